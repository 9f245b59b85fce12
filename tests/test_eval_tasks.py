"""Evaluation tasks: NERRE loaders, few-shot from training data only, the generic JSONL format,
and the converters to the strict scorers (a perfect answer must score 1.0 there)."""

from __future__ import annotations

import json
import math

import pytest

from extraction.datasets.nerre import load_entry_predictions
from eval.nerre_scoring import score_entries
from extraction.datasets.nerre_format import ENTRY_SCHEMAS, DopingRecord
from eval.report import published_rows
from eval.tasks import (
    TaskError,
    doping_to_strict,
    fold_few_shot,
    load_task,
    merge_records,
    score_prediction,
    strict_counts,
    to_strict,
)
from extraction.schemas import get_schema


def _pooled(task, predict):
    totals: dict[str, list[int]] = {}
    exact = 0
    for example in task.examples:
        counts = strict_counts(task.strict, example.strict_gold,
                               to_strict(predict(example), task.strict))
        for name, c in [*counts["fields"].items(), *counts["links"].items()]:
            totals[name] = [a + b for a, b in zip(totals.get(name, [0, 0, 0]), c)]
        exact += counts["exact"]
    return totals, exact


def test_doping_task_is_the_77_scored_test_sentences_with_training_few_shot():
    task = load_task("doping")
    assert len(task.examples) == 77 and task.strict == "doping" and task.schema == "doping"
    assert len({e.id for e in task.examples}) == 77
    assert task.examples[0].gold == {"hosts": ["ZnO"], "dopants": ["Al", "Ga", "In"], "links": [
        {"host": "ZnO", "dopant": "Al"}, {"host": "ZnO", "dopant": "Ga"},
        {"host": "ZnO", "dopant": "In"}]}
    assert task.few_shot == get_schema("doping").examples
    assert all(x.origin.startswith("nerre-doping-train:") for x in task.few_shot)
    assert not {x.text for x in task.few_shot} & {e.text for e in task.examples}


@pytest.mark.parametrize("name, size", [("general:0", 62), ("mof:3", 51)])
def test_fold_tasks_take_val_abstracts_and_few_shot_from_that_folds_train(name, size):
    task = load_task(name)
    schema, fold = name.split(":")
    assert len(task.examples) == size and task.strict == schema
    assert [x.origin for x in task.few_shot] == [x.origin for x in fold_few_shot(schema, int(fold))]
    assert all(f"fold{fold}-train" in x.origin for x in task.few_shot) and len(task.few_shot) == 2
    assert not {x.text for x in task.few_shot} & {e.text for e in task.examples}
    for example in task.few_shot:  # few-shot outputs are valid records of our schema
        get_schema(schema).model.model_validate(example.output)


@pytest.mark.parametrize("schema", ["general", "mof"])
def test_fold0_few_shot_is_what_make_fewshot_shipped(schema):
    shipped = get_schema(schema).examples
    picked = fold_few_shot(schema, 0)
    assert [(x.text, x.output, x.origin) for x in picked] == \
        [(x.text, x.output, x.origin) for x in shipped]


@pytest.mark.parametrize("name", ["nope", "general", "general:9", "mof:x", "jsonl:"])
def test_unknown_task_names_raise_with_a_hint(name):
    with pytest.raises(TaskError) as info:
        load_task(name)
    assert "doping | general:K" in info.value.hint or "fold" in str(info.value)


def test_doping_gold_round_trips_through_the_strict_scorer():
    totals, exact = _pooled(load_task("doping"), lambda e: e.gold)
    assert totals == {"hosts": [89, 0, 0], "dopants": [84, 0, 0], "host-dopant": [114, 0, 0]}
    assert exact == 77


@pytest.mark.parametrize("name", [f"general:{k}" for k in range(5)] + ["mof:0", "mof:2"])
def test_entry_gold_round_trips_through_the_strict_scorer(name):
    task = load_task(name)
    totals, exact = _pooled(task, lambda e: e.gold)
    # Entity words always survive the round trip; links too for general. (Six MOF gold
    # entries have name_of_mof as a list, which the strict scorer gives no links.)
    for field, (tp, fp, fn) in totals.items():
        if "-" not in field or name.startswith("general"):
            assert fp == fn == 0, (field, tp, fp, fn)
    assert exact >= len(task.examples) - 3


def test_published_rows_reproduce_scoring_md():
    rows = {row["model"]: row for row in published_rows("doping")}
    llama, gpt3 = rows["Llama-2-70B, LoRA"], rows["GPT-3 davinci, fine-tuned"]
    assert llama["published"] and llama["n"] == 77
    for row, host, dopant, triplet in ((llama, 0.8901, 0.8824, 0.8214),
                                       (gpt3, 0.8876, 0.7453, 0.7256)):
        strict = row["strict"]
        assert strict["fields"]["hosts"]["f1"] == pytest.approx(host, abs=5e-5)
        assert strict["fields"]["dopants"]["f1"] == pytest.approx(dopant, abs=5e-5)
        assert strict["links"]["host-dopant"]["f1"] == pytest.approx(triplet, abs=5e-5)
        assert 0 < row["normalised"]["links"]["host-dopant"]["f1"] < 1
    assert gpt3["parse_rate"] == pytest.approx(76 / 77)
    assert published_rows("jsonl:x.jsonl") == []


@pytest.mark.parametrize("task, model", [("general:2", "llama2"), ("mof:4", "gpt3")])
def test_published_fold_rows_equal_the_strict_fold_scores(task, model):
    kind, fold = task.split(":")
    predictions = load_entry_predictions(kind, model, int(fold))
    fold_scores = score_entries([p.gold for p in predictions], [p.entries for p in predictions],
                                ENTRY_SCHEMAS[kind])
    row = next(r for r in published_rows(task) if r["id"] == f"published-{model}")
    for field, score in fold_scores.entities.items():
        assert row["strict"]["fields"][field]["f1"] == pytest.approx(score.f1, nan_ok=True)
    for field, score in fold_scores.links.items():
        counts = row["strict"]["links"][f"{ENTRY_SCHEMAS[kind].root}-{field}"]
        assert (counts["tp"], counts["fp"], counts["fn"]) == (score.tp, score.fp, score.fn)
    assert row["exact_match"] == pytest.approx(fold_scores.exact_match)


def test_doping_links_to_unlisted_entities_are_dropped():
    record = doping_to_strict({"hosts": ["ZnO"], "dopants": ["Al"], "links": [
        {"host": "ZnO", "dopant": "Al"}, {"host": "TiO2", "dopant": "Al"},
        {"host": "ZnO", "dopant": "Al"}]})
    assert record == DopingRecord(basemats={"b0": "ZnO"}, dopants={"d0": "Al"},
                                  links={"d0": ["b0"]})


def test_merge_records_concatenates_lists_of_windows():
    assert merge_records([]) is None
    assert merge_records([{"hosts": ["A"], "links": []}, {"hosts": ["B"], "links": [1]}]) == \
        {"hosts": ["A", "B"], "links": [1]}


# --- the generic JSONL format --------------------------------------------------------------

def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


GOOD = {"id": "s1", "text": "Mn-doped ZnO films were grown.", "schema": "doping",
        "gold": {"hosts": ["ZnO"], "dopants": ["Mn"], "links": [{"host": "ZnO", "dopant": "Mn"}]}}


def test_jsonl_task_loads_validates_and_scores(tmp_path):
    path = _write(tmp_path / "mine.jsonl", [GOOD, {**GOOD, "id": "s2", "gold": [
        {"hosts": ["ZnO"], "dopants": [], "links": []},
        {"hosts": ["TiO2"], "dopants": ["N"], "links": []}]}])
    task = load_task(f"jsonl:{path}")
    assert task.name == f"jsonl:{path}" and task.strict == "doping"
    assert [e.id for e in task.examples] == ["s1", "s2"]
    assert task.examples[1].gold["hosts"] == ["ZnO", "TiO2"]  # a list of records is merged
    scores = score_prediction(task, task.examples[0], GOOD["gold"])
    assert scores["strict"]["links"]["host-dopant"] == [1, 0, 0]
    assert scores["normalised"]["exact"] == 1


def test_jsonl_task_with_a_json_schema_file_beside_it(tmp_path):
    alloys = {"type": "array", "items": {"type": "string"}}
    (tmp_path / "alloy.json").write_text(json.dumps({"type": "object",
                                                     "properties": {"alloys": alloys}}))
    path = _write(tmp_path / "alloys.jsonl", [
        {"text": "Inconel 718 was aged.", "gold": {"alloys": ["Inconel 718"]},
         "schema": "alloy.json"}])
    task = load_task(f"jsonl:{path}")
    assert task.schema == str(tmp_path / "alloy.json") and task.strict is None
    assert task.examples[0].id == "line1"
    scores = score_prediction(task, task.examples[0], {"alloys": ["inconel  718"]})
    assert scores["strict"] is None and scores["normalised"]["fields"]["alloys"] == [1, 0, 0]


def test_jsonl_bad_lines_are_all_reported_with_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [
        GOOD,
        "{not json",
        {"id": "s3", "text": "x", "schema": "doping"},
        {"id": "s1", "text": "dup", "schema": "doping", "gold": GOOD["gold"]},
        {"id": "s5", "text": "y", "schema": "doping", "gold": {"hosts": "ZnO", "dopants": []}},
        "",
        "[1, 2]",
        {"id": "s8", "text": "   ", "schema": "doping", "gold": {}},
    ])
    with pytest.raises(TaskError) as info:
        load_task(f"jsonl:{path}")
    message = str(info.value)
    assert f"{path}:2: not valid JSON" in message
    assert f"{path}:3: missing gold" in message
    assert f"{path}:4: duplicate id 's1'" in message
    assert f"{path}:5: gold.hosts: Input should be a valid list" in message
    assert f"{path}:5: gold.links: Field required" in message
    assert f"{path}:7: a line must be a JSON object" in message
    assert f"{path}:8: text must be a non-empty string" in message
    assert "hint:" in message


def test_jsonl_gold_may_exceed_the_generation_bounds(tmp_path):
    many = [f"D{i}" for i in range(10)]
    path = _write(tmp_path / "long.jsonl", [{**GOOD, "gold": {
        "hosts": ["CaF2"], "dopants": many, "links": []}}])
    assert load_task(f"jsonl:{path}").examples[0].gold["dopants"] == many


@pytest.mark.parametrize("rows, problem", [
    ([], "no examples"),
    ([GOOD, {**GOOD, "id": "s2", "schema": "general"}], "same schema"),
    ([{**GOOD, "schema": "nope.json"}], "schema 'nope.json'"),
])
def test_jsonl_file_level_problems(tmp_path, rows, problem):
    with pytest.raises(TaskError, match=problem):
        load_task(f"jsonl:{_write(tmp_path / 't.jsonl', rows)}")


def test_missing_jsonl_file(tmp_path):
    with pytest.raises(TaskError, match="cannot read"):
        load_task(f"jsonl:{tmp_path / 'none.jsonl'}")


def test_nan_free_scores_for_a_perfect_general_answer():
    task = load_task("general:1")
    example = task.examples[0]
    scores = score_prediction(task, example, example.gold)
    assert not any(math.isnan(v) for c in scores["normalised"]["fields"].values() for v in c)
    assert scores["normalised"]["exact"] == 1


def test_heldout_task_is_exactly_the_texts_an_adapter_held_out(tmp_path):
    from extraction.datasets.splits import training_split

    _, positives, negatives = training_split("doping")
    held = [positives[3].id, positives[10].id, negatives[0].id]
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "matextract-adapter.json").write_text(json.dumps(
        {"task": "doping", "base_model": "x", "data": {"validation_ids": held}}))
    task = load_task(f"heldout:{adapter}")
    assert sorted(e.id for e in task.examples) == sorted(held)
    assert task.strict == "doping" and task.schema == "doping"
    test_texts = {e.text for e in load_task("doping").examples}
    assert not test_texts & {e.text for e in task.examples}  # training data, never test
    (adapter / "matextract-adapter.json").write_text(json.dumps({"task": "doping"}))
    with pytest.raises(TaskError, match="held-out ids"):
        load_task(f"heldout:{adapter}")


def test_a_heldout_doping_run_is_reported_with_triplet_f1_and_doping_columns():
    from eval.report import markdown_table, summarise

    task = load_task("doping")
    linked = [e for e in task.examples if e.gold["links"]][:3]
    unlinked = [{**e.gold, "links": []} for e in linked]  # right entities, no links
    lines = [score_prediction(task, e, p) for e, p in zip(linked, unlinked)]
    row = summarise({"task": "heldout:some-adapter", "schema": "doping"}, lines)
    # the headline is the triplet (host-dopant link) F1, not the mean of the field F1s
    assert row["headline_f1"]["strict"] == row["strict"]["links"]["host-dopant"]["f1"] == 0.0
    header = markdown_table("heldout:some-adapter", [row]).splitlines()[0]
    assert "strict triplet F1" in header and "norm. link F1" in header


def test_heldout_task_of_a_jsonl_adapter_with_a_built_in_entry_schema(tmp_path):
    # the card's task is a file path, not a fold number: the schema's own examples apply
    lines = [{"id": f"m{n}", "text": f"LiFePO4 sample {n} is a cathode.", "schema": "general",
              "gold": {"materials": [{"formula": "LiFePO4", "name": "", "acronym": "",
                                      "applications": ["cathode"], "structure_or_phase": [],
                                      "description": []}]}} for n in range(3)]
    path = tmp_path / "corrections.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "matextract-adapter.json").write_text(json.dumps(
        {"task": f"jsonl:{path}", "base_model": "x", "data": {"validation_ids": ["m1"]}}))
    task = load_task(f"heldout:{adapter}")
    assert [e.id for e in task.examples] == ["m1"] and task.schema == "general"
    assert task.few_shot and all(x.origin.startswith("nerre-general") for x in task.few_shot)
