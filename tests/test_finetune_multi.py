"""One adapter for several schemas: a multi:TASK,... task trains on every listed task, each
text prompted with its own schema (plus schema variants), the card keeps bounds and units per
schema, 'auto' uses the adapter for schemas without one of their own, and a schema left out
of training is evaluated zero-shot like any other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from extraction import models, prompting
from extraction.config import ExtractorConfig
from extraction.datasets.splits import task_parts, training_split
from extraction.errors import ConfigError
from extraction.pipeline import Extractor, adapted_schema
from extraction.schemas import get_schema
from extraction.types import Document
from finetune.config import FinetuneConfig
from finetune.data import build_pairs
from finetune.trainer import CARD_FILE, train

MULTI = "multi:doping,general:0,mof:0"
LEAVE_DOPING_OUT = "multi:general:0,mof:0"


def _fields_in(prompt: str) -> set[str]:
    """The top-level field names a prompt's "Fields:" list shows."""
    block = prompt.split("Fields:\n", 1)[1]
    return {line[2:].split(":", 1)[0].split("[", 1)[0].split(".", 1)[0]
            for line in block.splitlines() if line.startswith("- ")}


def test_a_multi_task_builds_pairs_of_every_task_each_with_its_own_schema(tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    pairs, summary = build_pairs(tokenizer, FinetuneConfig(
        task=MULTI, negatives=0.0, retry_pairs=0.0, schema_variants=1, seed=0))
    texts = {}
    for part in task_parts(MULTI):
        schema, positives, _ = training_split(part)
        texts.update({item.id: (schema, item) for item in positives})
    originals = [p for p in pairs if p.kind == "original"]
    variants = [p for p in pairs if p.kind == "variant"]
    assert len(originals) == len(variants) == len(texts) == summary.examples
    assert {texts[p.id][0] for p in originals} == {"doping", "general", "mof"}
    assert list(summary.bounds) == ["doping", "general", "mof"]
    for pair in originals[:60]:
        schema, item = texts[pair.id]
        assert tokenizer.decode(pair.prompt_ids) == prompting.render(
            tokenizer, prompting.build_messages(get_schema(schema), item.text, examples=()))
        completion = tokenizer.decode(pair.completion_ids).removesuffix(tokenizer.eos_token)
        assert json.loads(completion) == item.gold
    shown = {texts[p.id][0]: p for p in originals}
    for pair in variants[:60]:
        prompt = tokenizer.decode(pair.prompt_ids)
        original = tokenizer.decode(shown[texts[pair.id][0]].prompt_ids)
        assert f"<document>\n{texts[pair.id][1].text}\n</document>" in prompt
        assert prompt.split("Fields:")[1].split("<document>")[0] != \
            original.split("Fields:")[1].split("<document>")[0]
        completion = json.loads(tokenizer.decode(pair.completion_ids)
                                .removesuffix(tokenizer.eos_token))
        assert set(completion) == _fields_in(prompt)  # answers the schema it is shown
    assert sum(summary.variant_changes.values()) >= len(variants)
    assert "schema variants:" in summary.text() and "doping: string bound" in summary.text()


@pytest.mark.parametrize("task, message", [
    ("multi:", "needs one or more different tasks"),
    ("multi:doping,doping", "needs one or more different tasks"),
    ("multi:general:0,general:1", "two of its tasks have the schema 'general'"),
])
def test_bad_multi_tasks_are_one_clear_error(task, message, tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    with pytest.raises(ConfigError, match=message):
        build_pairs(tokenizer, FinetuneConfig(task=task, negatives=0.0, retry_pairs=0.0))


@pytest.fixture(scope="module")
def leave_doping_out(tiny_model_dirs, tmp_path_factory) -> tuple[Path, dict]:
    """A 2-step multi-schema adapter on a tiny LLaMA: general and MOF, not doping."""
    out = tmp_path_factory.mktemp("multi") / "adapter"
    config = FinetuneConfig(task=LEAVE_DOPING_OUT, model=str(tiny_model_dirs["llama"]), rank=4,
                            alpha=8, dropout=0.0, epochs=1, batch_size=4, warmup_steps=0,
                            limit=8, val_fraction=0.25, schema_variants=1, retry_pairs=0.3,
                            accept_exclusions=True, seed=2)
    card = train(config, out)
    assert card["complete"] and card["steps"] == 2
    return out, card


def test_the_multi_schema_card_records_tasks_variants_and_bounds_per_schema(leave_doping_out):
    out, card = leave_doping_out
    saved = json.loads((out / CARD_FILE).read_text())
    assert saved["task"] == LEAVE_DOPING_OUT and saved["schemas"] == ["general", "mof"]
    assert saved["multi_schema"] is True
    assert saved["config"]["schema_variants"] == 1 and saved["config"]["retry_pairs"] == 0.3
    data, inference = saved["data"], saved["inference"]
    assert set(data["pairs_by_kind"]) == {"original", "silver", "variant", "retry"}
    assert sum(data["pairs_by_kind"].values()) == data["pairs"] == 8
    assert data["variant_changes"] and data["retry_perturbations"]
    for schema in ("general", "mof"):
        entry = inference["schemas"][schema]
        assert entry["unit"] == "whole" and entry["bounds"] == data["learnt_bounds"][schema]
        assert entry["bounds"]["strings"]  # NERRE gold needs longer strings than the schema
    assert inference["bounds"] == {} and inference["unit"] == "whole"
    assert inference["max_attempts"] == 2 and inference["few_shot"] == 0
    assert "general, mof" in (out / "README.md").read_text()


@pytest.fixture
def shipped(leave_doping_out, tiny_model_dirs, tmp_path, monkeypatch) -> str:
    """A shipped-adapters folder holding the multi-schema adapter and a doping adapter for
    the same tiny model; returns the model's name as cards give it."""
    model = str(tiny_model_dirs["llama"])
    folder = tmp_path / "adapters"
    shutil.copytree(leave_doping_out[0], folder / "multi-tiny")
    card = json.loads((folder / "multi-tiny" / CARD_FILE).read_text())
    (folder / "multi-tiny" / CARD_FILE).write_text(json.dumps({**card, "base_model": model}))
    (folder / "doping-tiny").mkdir()
    (folder / "doping-tiny" / "adapter_config.json").write_text("{}")
    (folder / "doping-tiny" / CARD_FILE).write_text(json.dumps(  # a card from before #16
        {"base_model": model, "task": "doping", "inference": {"unit": "sentence"}}))
    monkeypatch.setattr("extraction.models.adapters.shipped_adapters_dir", lambda: folder)
    return model


def test_auto_uses_the_multi_schema_adapter_where_no_schema_has_its_own(shipped, tmp_path):
    user_schema = tmp_path / "alloys.json"
    user_schema.write_text(json.dumps({"type": "object", "properties": {
        "alloys": {"type": "array", "items": {"type": "string"}}}}))
    assert models.default_adapter(shipped, "doping") == "doping-tiny"  # its own wins
    assert models.default_adapter(shipped, "mof") == "multi-tiny"
    assert models.default_adapter(shipped, str(user_schema)) == "multi-tiny"
    assert models.default_adapter("another-model", "mof") is None
    config = ExtractorConfig(model=shipped, schema_name="general")
    assert (config.adapter, config.unit, config.max_attempts) == ("multi-tiny", "whole", 2)
    assert ExtractorConfig(model=shipped, schema_name="doping").unit == "sentence"
    # the general bounds the adapter learnt apply to general, and to nothing else
    _, positives, _ = training_split("general:0")
    long_gold = next(a.gold for a in positives if not get_schema("general").accepts(a.gold)
                     and adapted_schema(config).accepts(a.gold))
    assert long_gold
    doping = ExtractorConfig(model=shipped, schema_name="doping", adapter="multi-tiny")
    assert adapted_schema(doping).json_schema() == get_schema("doping").json_schema()
    assert doping.unit == "whole"


def test_a_schema_left_out_of_training_is_extracted_and_evaluated_zero_shot(
        shipped, leave_doping_out, tiny_model_dirs, tmp_path, cli):
    adapter = str(leave_doping_out[0])
    loaded = models.load(str(tiny_model_dirs["llama"]), device="cpu", adapter=adapter)
    config = ExtractorConfig(model=shipped, schema_name="doping", adapter=adapter,
                             max_attempts=1, max_new_tokens=96)
    result = Extractor(config, loaded=loaded).extract(
        Document.from_text("ZnO films doped with Al were grown by sputtering."))
    assert not result.errors and set(result.records[0]) == {"hosts", "dopants", "links"}
    out = tmp_path / "eval"
    ran = cli("eval", "--task", "doping", "--model", str(tiny_model_dirs["llama"]),
              "--adapter", adapter, "--set", "max_attempts=1", "--set", "max_new_tokens=96",
              "--limit", "2", "--out", str(out))
    assert ran.returncode == 0, ran.stderr
    (meta,) = [json.loads(p.read_text()) for p in out.glob("*.config.json")]
    assert meta["config"]["adapter"] == adapter and meta["config"]["unit"] == "whole"
