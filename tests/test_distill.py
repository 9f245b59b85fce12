"""Distillation data: the pool is unannotated text outside every scored split, and a teacher's
label is kept only when it validates and every value is in the text."""

from __future__ import annotations

import json

import pytest

from extraction.datasets import nerre
from extraction.errors import ConfigError
from extraction.pipeline import Extractor, ExtractorConfig
from finetune.distill import DOPING_CUE, SilverLabel, label, review, tally, unlabelled_pool


def test_pool_is_unannotated_text_outside_the_scored_splits():
    pool = unlabelled_pool("doping", fold=0)
    validation = {row.abstract for kind in ("general", "mof")
                  for row in nerre.load_entry_fold(kind, 0, split="val")}
    scored = {s.text.strip() for s in nerre.load_doping_sentences("test", relevant_only=False)}
    assert pool and len({item.id for item in pool}) == len(pool)
    for item in pool:
        assert item.gold == {} and item.text not in scored
        assert not any(item.text in abstract for abstract in validation)
    cued = [item for item in pool if DOPING_CUE.search(item.text)]
    assert len(pool) == 3 * len(cued)  # every sentence that mentions doping, twice as many others
    assert unlabelled_pool("doping", fold=0) == pool  # seeded
    with pytest.raises(ConfigError, match="no unlabelled pool"):
        unlabelled_pool("mof")


ANSWERS = {  # the teacher's scripted answers (random weights cannot answer on cue)
    "ZnO films were doped with Al.": {"hosts": ["ZnO"], "dopants": ["Al"],
                                      "links": [{"host": "ZnO", "dopant": "Al"}]},
    "TiO2 was doped with nitrogen.": {"hosts": ["TiO2"], "dopants": ["Fe"],
                                      "links": [{"host": "TiO2", "dopant": "Fe"}]},
    "The furnace was heated slowly.": {"hosts": [], "dopants": [], "links": []},
}


def test_labels_are_kept_only_when_valid_and_grounded(tiny_model, monkeypatch):
    from extraction.datasets.annotated import AnnotatedText

    extractor = Extractor(ExtractorConfig(model=tiny_model.name, schema_name="doping",
                                          adapter="none", max_attempts=1), loaded=tiny_model)
    texts = [AnnotatedText(f"t{i}", text, {}) for i, text in enumerate(ANSWERS)]

    def decode(conversations, with_feedback, sources):
        return [(json.dumps(ANSWERS[next(t for t in ANSWERS if t in json.dumps(c))]), {})
                for c in conversations]

    monkeypatch.setattr(extractor, "_decode", decode)
    labels = [review(extractor.spec, item) for item in label(extractor, texts)]
    assert [item.id for item in labels] == ["t0", "t1", "t2"]
    assert labels[0].reason is None and labels[0].record == ANSWERS[texts[0].text]
    assert labels[1].record is None and labels[1].reason == "value not in the text: 'Fe'"
    assert labels[2].reason is None and labels[2].record == ANSWERS[texts[2].text]
    assert tally(labels) == {"kept, with values": 1, "kept, empty": 1,
                             "left out: value not in the text": 1}
    line = labels[0].line("doping", "teacher")
    assert set(line) >= {"id", "text", "gold", "schema"}


def test_silver_texts_join_the_training_data_counted_apart(tiny_model_dirs, tmp_path):
    from finetune.config import FinetuneConfig
    from finetune.trainer import training_data

    silver = tmp_path / "silver.jsonl"
    silver.write_text("".join(json.dumps({"id": f"s{i}", "text": text, "gold": gold,
                                          "schema": "doping"}) + "\n"
                              for i, (text, gold) in enumerate(ANSWERS.items())
                              if i != 1))  # the kept labels: one with values, one empty
    # no negatives drawn: the empty silver text is one, so only the other joins
    config = FinetuneConfig(task="doping", model=str(tiny_model_dirs["llama"]),
                            negatives=0.0, retry_pairs=0.0)
    _, plain, _ = training_data(config)
    _, pairs, summary = training_data(config.model_copy(update={"silver": str(silver)}))
    assert summary.kinds["silver"] == 1 and len(pairs) == len(plain) + 1
    assert [p.id for p in pairs if p.kind == "silver"] == ["silver:s0"]
    assert summary.counts()["pairs_by_kind"]["silver"] == 1 and summary.positives == \
        len(plain) + 1
    general = tmp_path / "general.jsonl"
    general.write_text(json.dumps({"id": "g", "text": "LiFePO4 cathodes.", "schema": "general",
                                   "gold": {"materials": []}}) + "\n")
    with pytest.raises(ConfigError, match="its schema is 'general'"):
        training_data(config.model_copy(update={"silver": str(general)}))
    # a multi-schema task would not know which part the silver texts belong to: refused,
    # never silently ignored
    with pytest.raises(ConfigError, match="not to a multi-schema task"):
        training_data(config.model_copy(update={"task": "multi:doping,general:0",
                                                "silver": str(silver)}))


@pytest.mark.parametrize("text,record,reason", [
    ("ZnO films were doped with Al.", {"hosts": ["ZnO"], "dopants": ["Al"],
                                       "links": [{"host": "ZnO", "dopant": "Al"}]}, None),
    ("ZnO films were doped with Al.", {"hosts": [], "dopants": [], "links": []},
     "evaluator signal: hosts is empty but the text mentions 'doped'"),
    ("MOF-5 was doped with MOF-5.", {"hosts": ["MOF-5"], "dopants": ["MOF-5"],
                                     "links": [{"host": "MOF-5", "dopant": "MOF-5"}]},
     "evaluator signal"),
    ("Zeolite 13X adsorbs more CO2 than MOF-199.", {"hosts": ["Zeolite 13X"],
                                                    "dopants": ["MOF-199"], "links": []},
     "no cue"),
    ("The furnace was heated slowly.", {"hosts": [], "dopants": [], "links": []}, None),
])
def test_review_applies_the_evaluator_and_the_schema_cues(text, record, reason):
    from extraction.schemas import get_schema

    reviewed = review(get_schema("doping"), SilverLabel("x", text, record, None))
    if reason is None:
        assert reviewed.reason is None and reviewed.record == record
    else:
        assert reviewed.record is None and reviewed.reason.startswith(reason)
