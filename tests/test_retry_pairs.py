"""Reflexion for tuned models: retry pairs hold exactly the feedback the pipeline's evaluator
gives a flawed first answer (mistakes it does not notice are left out), with the gold as the
completion; an adapter's card sets its default attempts, chosen on held-out data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from eval.attempts import choose_attempts, fewest_worth_it
from extraction import models, prompting
from extraction.checking import reflexion
from extraction.checking.grounding import Grounder
from extraction.config import ExtractorConfig
from extraction.datasets.splits import training_split
from extraction.errors import ConfigError
from extraction.pipeline import Extractor
from extraction.schemas import get_schema
from extraction.types import Document
from finetune.config import FinetuneConfig
from finetune.data import build_pairs
from finetune.retry import PERTURBATIONS, make_retry, value_pool
from finetune.trainer import CARD_FILE, train


@pytest.mark.parametrize("task", ["doping", "general:0", "mof:0"])
def test_retry_feedback_is_what_the_evaluator_says_about_the_flawed_answer(task):
    schema, positives, negatives = training_split(task)
    spec = get_schema(schema)
    items = [a for a in positives[:40] + negatives[:10] if spec.accepts(a.gold)]
    pool = value_pool(a.gold for a in items)
    used, made = set(), 0
    for number, item in enumerate(items):
        retry, unnoticed = make_retry(spec, item.text, item.gold, random.Random(number),
                                      pool=pool)
        if retry is None:  # e.g. a doping negative: a host not in the text cannot be written
            assert set(unnoticed) == set(PERTURBATIONS)
            continue
        made += 1
        assert retry.answer != item.gold
        assert set(unnoticed) < set(PERTURBATIONS) and retry.perturbation not in unnoticed
        used.add(retry.perturbation)
        checked, signals = reflexion.evaluate(spec, prompting.compact_json(retry.answer),
                                              item.text, Grounder(Document.from_text(item.text)))
        attempt = reflexion.Attempt(1, [], "", checked.record, **signals)
        assert checked.valid and attempt.signals  # a mistake the grammar could write, noticed
        assert retry.feedback == attempt.signals + [
            f"Reflection: I must fix this: {attempt.signals[0]}"]
    assert len(used) >= 3 and made >= 0.6 * len(items)


def test_a_mistake_nobody_notices_makes_no_retry_pair():
    spec = get_schema("doping")
    text = "Mn was added to the melt."  # no doping cue: an emptied answer draws no signal
    gold = {"hosts": [], "dopants": ["Mn"], "links": []}
    for seed in range(5):
        # dropped, emptied or moved to hosts: nothing to notice; misspelt ('M', 'nM'): not in
        # the text, but the grammar copies dopants from the text: it could not write that
        retry, unnoticed = make_retry(spec, text, gold, random.Random(seed), pool={})
        assert retry is None and set(unnoticed) == set(PERTURBATIONS)
    passed_over = set()
    for seed in range(20):  # perturbations are tried in a seeded order until one is noticed
        retry, unnoticed = make_retry(spec, text, gold, random.Random(seed), pool={},
                                      extractive=False)
        assert retry is not None and retry.perturbation == "misspell"
        assert retry.feedback[0] in (f"dopants[0] = {wrong!r} does not appear in the text; "
                                     "copy values exactly" for wrong in ("M", "nM"))
        passed_over.update(unnoticed)
    assert passed_over == {"drop", "add", "move", "empty"}


def _task(folder: Path, golds: list[dict]) -> str:
    texts = ["ZnO films were doped with Al.", "TiO2 doped with N absorbs visible light.",
             "Er3+-doped NaYF4 nanocrystals emit green light.", "The furnace was heated."]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{n}", "text": text, "gold": gold,
                                        "schema": "doping"}) + "\n"
                            for n, (text, gold) in enumerate(zip(texts, golds))))
    return f"jsonl:{path}"


DOPED = [{"hosts": ["ZnO"], "dopants": ["Al"], "links": [{"host": "ZnO", "dopant": "Al"}]},
         {"hosts": ["TiO2"], "dopants": ["N"], "links": [{"host": "TiO2", "dopant": "N"}]},
         {"hosts": ["NaYF4"], "dopants": ["Er3+"],
          "links": [{"host": "NaYF4", "dopant": "Er3+"}]},
         {"hosts": [], "dopants": [], "links": []}]
EMPTY = [{"hosts": [], "dopants": [], "links": []}] * 4


def test_retry_pairs_are_the_inference_retry_prompt_with_the_gold_as_completion(
        tiny_tokenizer_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    task = _task(tmp_path / "doped", DOPED)
    pairs, summary = build_pairs(tokenizer, FinetuneConfig(task=task, retry_pairs=1.0, seed=4))
    retries = [p for p in pairs if p.kind == "retry"]
    assert len(retries) == summary.kinds["retry"] == sum(summary.retry_perturbations.values())
    assert len(retries) >= 3 and len(retries) + summary.retry_unnoticed == 4
    spec = get_schema("doping")
    texts = {f"t{n}": text for n, text in enumerate(
        [json.loads(line)["text"] for line in Path(task[6:]).read_text().splitlines()])}
    for pair in retries:
        prompt = tokenizer.decode(pair.prompt_ids)
        feedback = [line[2:] for line in prompt.split("had problems:\n", 1)[1]
                    .split("\nWrite a corrected answer.")[0].splitlines()]
        assert feedback and feedback[-1].startswith("Reflection: ")
        assert prompt == prompting.render(tokenizer, prompting.build_messages(
            spec, texts[pair.id], examples=(), feedback=feedback))
        completion = tokenizer.decode(pair.completion_ids).removesuffix(tokenizer.eos_token)
        assert json.loads(completion) == DOPED[int(pair.id[1:])]
    # texts whose every mistake goes unnoticed (nothing to drop, nothing foreign to add)
    _, empty = build_pairs(tokenizer, FinetuneConfig(task=_task(tmp_path / "empty", EMPTY),
                                                     retry_pairs=1.0))
    assert empty.kinds["retry"] == 0 and empty.retry_unnoticed == 4
    assert "4 drawn texts had no mistake the evaluator noticed" in empty.text()


def _adapter(folder: Path, inference: dict, *, task: str = "doping") -> str:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / CARD_FILE).write_text(json.dumps({"task": task, "inference": inference}))
    return str(folder)


def test_the_cards_attempts_are_used_unless_set(tmp_path):
    one = _adapter(tmp_path / "one", {"max_attempts": 1})
    assert ExtractorConfig(adapter=one).max_attempts == 1
    assert ExtractorConfig(adapter=one, max_attempts=2).max_attempts == 2  # set: it wins
    assert ExtractorConfig(adapter=_adapter(tmp_path / "old", {})).max_attempts == 2
    assert ExtractorConfig(adapter="none").max_attempts == 2
    multi = _adapter(tmp_path / "multi", {"max_attempts": 2, "schemas": {
        "doping": {"max_attempts": 1}, "general": {}}}, task="multi:doping,general:0")
    assert ExtractorConfig(adapter=multi, schema_name="doping").max_attempts == 1
    assert ExtractorConfig(adapter=multi, schema_name="general").max_attempts == 2
    assert ExtractorConfig(adapter=multi, schema_name="mof").max_attempts == 2


def test_the_extractor_retries_as_the_card_says(tiny_model_dirs, tmp_path):
    loaded = models.load(str(tiny_model_dirs["llama"]), device="cpu")
    text = Document.from_text("Mn-doped ZnO and Er3+-doped NaYF4 films were studied.")
    attempts = {}
    for name, setting in (("card", {}), ("explicit", {"max_attempts": 3})):
        config = ExtractorConfig(adapter=_adapter(tmp_path / name, {"max_attempts": 1}),
                                 max_new_tokens=96, extractive=False, reflect_with_model=False,
                                 **setting)
        result = Extractor(config, loaded=loaded).extract(text)
        attempts[name] = (config.max_attempts, len(result.trace[0]["attempts"]))
    assert attempts["card"] == (1, 1)
    assert attempts["explicit"][0] == 3 and attempts["explicit"][1] >= 1


@pytest.mark.parametrize("f1, chosen", [
    ({1: 0.548, 2: 0.550}, 1),  # the doping figures: not worth 2.2x the time
    ({1: 0.50, 2: 0.52}, 2),
    ({1: 0.50, 2: 0.51, 3: 0.53}, 3),
    ({1: 0.60, 2: 0.55}, 1),
])
def test_more_attempts_are_kept_only_when_they_add_two_points(f1, chosen):
    assert fewest_worth_it(f1) == chosen


def test_attempts_are_chosen_on_held_out_data_only():
    meta = {"id": "x", "task": "doping", "config": {"adapter": "a", "max_attempts": 2}}
    with pytest.raises(ConfigError, match="held-out texts only"):
        choose_attempts([(meta, [{"id": "1"}])])


def test_choose_attempts_writes_the_choice_into_the_card(tiny_model_dirs, tmp_path, cli):
    out = tmp_path / "adapter"
    train(FinetuneConfig(task="doping", model=str(tiny_model_dirs["opt"]), rank=4, alpha=8,
                         epochs=1, batch_size=4, limit=8, val_fraction=0.25, max_length=512,
                         negatives=0.0,  # held-out texts with values: an F1 to compare
                         accept_exclusions=True, seed=1), out)
    results = tmp_path / "heldout"
    ran = cli("eval", "--task", f"heldout:{out}", "--model", str(tiny_model_dirs["opt"]),
              "--adapter", str(out), "--set", "max_attempts=1,2", "--set",
              "max_new_tokens=96", "--limit", "2", "--out", str(results), "--choose-attempts")
    assert ran.returncode == 0, ran.stderr
    card = json.loads((out / CARD_FILE).read_text())
    choice = card["inference"]["max_attempts_choice"]
    assert card["inference"]["max_attempts"] == choice["chosen"] == fewest_worth_it(
        {int(k): v for k, v in choice["f1"].items()})
    assert choice["results"] == str(results) and "max_attempts" in ran.stderr
    assert ExtractorConfig(adapter=str(out)).max_attempts == choice["chosen"]
