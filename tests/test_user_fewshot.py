"""Few-shot examples and Reflexion cues for a user's own JSON Schema (issue #15): the schema's
``examples``, ``--examples FILE.jsonl`` and its chooser, eval's jsonl tasks with it, the
empty-answer share, and cues derived from the schema's words."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli.eval import run_eval
from app.cli.main import app as matextract_app
from eval.report import markdown_table, summarise
from eval.runner import build_grid, empty_answer, parse_options, result_line
from eval.tasks import TaskError, load_task
from extraction import models, prompting
from extraction.checking.grounding import Grounder
from extraction.checking.reflexion import evaluate
from extraction.errors import ConfigError, SchemaError
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.schemas import get_schema
from extraction.schemas.base import Example
from extraction.schemas.fewshot_choice import choose_examples, read_examples_file
from extraction.types import Document, Extraction

ITEM = {"type": "object", "properties": {
    "host_material": {"type": "string", "description": "the doped material, e.g. ZnO"},
    "dopant": {"type": "string", "description": "the element added"}}}
PROPERTIES = {
    "records": {"type": "array", "description": "one entry per doped sample", "items": ITEM},
    "synthesis_temperature": {"type": "number", "description": "temperature of the anneal, in C"},
}
FILLED = {"records": [{"host_material": "ZnO", "dopant": "Mn"}], "synthesis_temperature": 600}


def _schema(folder: Path, *, name: str = "anneals.json", examples: list | None = None,
            **properties: dict) -> Path:
    schema = {"title": "anneals", "description": "Doped samples and their anneal.",
              "type": "object", "properties": {**PROPERTIES, **properties},
              "required": ["records"]}
    if examples is not None:
        schema["examples"] = examples
    path = folder / name
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list[dict], *, schema: str = "anneals.json") -> Path:
    path.write_text("".join(json.dumps({"schema": schema, **row}) + "\n" for row in rows),
                    encoding="utf-8")
    return path


def _gold(host: str | None = None, dopant: str | None = None,
          temperature: float | None = None) -> dict:
    records = [{"host_material": host or "", "dopant": dopant or ""}] if host or dopant else []
    return {"records": records, "synthesis_temperature": temperature}


# --- the schema's own examples ----------------------------------------------------------------

def test_schema_examples_become_the_prompts_few_shot_examples(tmp_path):
    path = _schema(tmp_path, examples=[
        {"text": "Mn-doped ZnO was annealed at 600 C.", "gold": FILLED},
        {"records": [], "synthesis_temperature": 20},  # a plain instance: no text to read
        {"text": "Er3+ in NaYF4.", "output": {"records": [{"dopant": "Er3+",
                                                           "host_material": "NaYF4"}]}},
    ])
    spec = get_schema(str(path))
    assert [e.text for e in spec.examples] == ["Mn-doped ZnO was annealed at 600 C.",
                                               "Er3+ in NaYF4."]
    assert [e.origin for e in spec.examples] == [f"{path}:examples[0]", f"{path}:examples[2]"]
    # as the pipeline writes records: every key, in the schema's order
    assert spec.examples[1].output == {"records": [{"host_material": "NaYF4", "dopant": "Er3+"}],
                                       "synthesis_temperature": None}
    assert list(spec.examples[1].output["records"][0]) == ["host_material", "dopant"]
    prompt = "\n".join(m["content"] for m in prompting.build_messages(spec, "Some text."))
    assert "Er3+ in NaYF4." in prompt and prompting.compact_json(spec.examples[0].output) in prompt


@pytest.mark.parametrize("bad, problem", [
    ({"text": "x", "gold": {"records": [{"host_material": "ZnO"}]}},
     "records.0.dopant: Field required"),
    ({"text": "x", "gold": {"records": "ZnO"}}, "records: Input should be a valid list"),
    ({"text": "x", "output": {"records": [], "colour": "red"}}, "colour: Extra inputs"),
    ({"text": "  ", "gold": {"records": []}}, "'text' must be a non-empty string"),
    ({"gold": {"records": []}}, "'text' must be a non-empty string"),
    ({"text": "Mn-doped ZnO."}, "needs the record for its text as 'gold'"),
])
def test_a_bad_schema_example_names_the_file_the_index_and_the_problem(tmp_path, bad, problem):
    path = _schema(tmp_path, examples=[{"text": "ZnO:Mn", "gold": FILLED}, bad])
    with pytest.raises(SchemaError) as info:
        get_schema(str(path))
    assert f"{path}: examples[1]" in str(info.value) and problem in str(info.value)


def test_schema_examples_must_be_a_list(tmp_path):
    with pytest.raises(SchemaError, match="'examples' must be a list"):
        get_schema(str(_schema(tmp_path, examples={"text": "x"})))  # type: ignore[arg-type]


# --- --examples FILE.jsonl and its chooser ---------------------------------------------------

def _example(text: str, output: dict) -> Example:
    return Example(text, output, origin=text[:12])


LONG = _example("Mn-doped ZnO was annealed. " * 60, FILLED)  # 1,620 characters, every field
EMPTY = _example("Nothing here at all.", _gold())
BOTH = _example("Mn-doped ZnO films were made.", _gold("ZnO", "Mn"))
HEAT = _example("Heated to 700 C.", _gold(temperature=700.0))
BOTH_SHORTER = _example("Co-doped TiO2 films.", _gold("TiO2", "Co"))
POOL = [LONG, EMPTY, BOTH, HEAT, BOTH_SHORTER]


def test_chooser_prefers_filled_short_texts_that_together_show_every_field():
    assert choose_examples(POOL, count=5) == (BOTH_SHORTER, HEAT, BOTH, LONG, EMPTY)
    for count in range(6):  # nested choices: a grid over few_shot shows nested sets
        assert choose_examples(POOL, count=count) == choose_examples(POOL, count=5)[:count]
    assert choose_examples(POOL[::-1], count=3) == (BOTH_SHORTER, HEAT, BOTH)  # any order
    assert choose_examples([LONG, EMPTY], count=1) == (LONG,)  # long only when nothing else
    assert choose_examples([BOTH, BOTH, HEAT], count=3) == (BOTH, HEAT)  # no text twice


def test_examples_file_of_another_schema_is_refused_naming_both(tmp_path):
    schema = _schema(tmp_path)
    doping = _jsonl(tmp_path / "doping.jsonl", [{"text": "Mn-doped ZnO.", "gold": {
        "hosts": ["ZnO"], "dopants": ["Mn"], "links": []}}], schema="doping")
    with pytest.raises(ConfigError) as info:
        read_examples_file(doping, schema=str(schema))
    assert "'doping'" in str(info.value) and repr(str(schema)) in str(info.value)
    # before any model work: the model named here does not exist
    config = ExtractorConfig(schema_name=str(schema), model="no-such-model", adapter="none",
                             examples=str(doping))
    with pytest.raises(ConfigError, match="annotated for schema 'doping'"):
        Extractor(config)


def test_examples_file_may_name_an_equal_copy_of_the_schema(tmp_path):
    (tmp_path / "train").mkdir()
    shutil.copy(_schema(tmp_path), tmp_path / "train" / "anneals.json")
    train = _jsonl(tmp_path / "train" / "train.jsonl", [{"id": "a", "text": "Mn in ZnO.",
                                                         "gold": FILLED}])
    found = read_examples_file(train, schema=str(tmp_path / "anneals.json"))
    assert [(e.text, e.origin) for e in found] == [("Mn in ZnO.", f"{train}:a")]


@pytest.mark.parametrize("command", ["extract", "batch", "eval"])
def test_examples_is_an_option_of_extract_batch_and_eval(command):
    result = CliRunner().invoke(matextract_app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--examples" in result.output and "annotated" in result.output


def test_eval_takes_examples_from_its_option_not_from_set():
    """The task's candidates come from --examples; a --set value would not reach them."""
    with pytest.raises(ConfigError, match="--examples"):
        parse_options(["examples=train.jsonl"])


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs):
    return models.load(str(tiny_model_dirs["llama"]), device="cpu")


TRAIN_ROWS = [
    {"id": "t-long", "text": "Mn-doped ZnO was annealed at 600 C. " * 40, "gold": FILLED},
    {"id": "t-empty", "text": "Nothing to report.", "gold": _gold()},
    {"id": "t-both", "text": "Co-doped TiO2 films were grown.", "gold": _gold("TiO2", "Co")},
    {"id": "t-heat", "text": "The powder was annealed at 700 C.", "gold": _gold(temperature=700)},
    {"id": "t-scored", "text": "Er-doped NaYF4 was annealed at 500 C.",
     "gold": _gold("NaYF4", "Er", 500)},  # also a scored text: never a few-shot example
]
TEST_ROWS = [
    {"id": "s1", "text": "Er-doped NaYF4 was annealed at 500 C.",
     "gold": _gold("NaYF4", "Er", 500)},
    {"id": "s2", "text": "Al-doped ZnO films were sputtered.", "gold": _gold("ZnO", "Al")},
]


def test_extractor_takes_the_files_choice_over_the_schemas_examples(tmp_path, tiny):
    schema = _schema(tmp_path, examples=[{"text": "Own example.", "gold": FILLED}])
    train = _jsonl(tmp_path / "train.jsonl", TRAIN_ROWS[:4])
    base = {"schema_name": str(schema), "model": "tiny", "adapter": "none"}
    own = Extractor(ExtractorConfig(**base), loaded=tiny)
    assert [e.text for e in own.examples] == ["Own example."]
    chosen = Extractor(ExtractorConfig(**base, examples=str(train)), loaded=tiny)
    assert [e.origin for e in chosen.examples] == [f"{train}:t-both", f"{train}:t-heat"]
    one = Extractor(ExtractorConfig(**base, examples=str(train), few_shot=1), loaded=tiny)
    assert [e.origin for e in one.examples] == [f"{train}:t-both"]


def test_eval_jsonl_task_draws_few_shot_from_examples_never_from_scored_lines(
        tmp_path, tiny, tiny_model_dirs):
    _schema(tmp_path)
    train = _jsonl(tmp_path / "train.jsonl", TRAIN_ROWS)
    test = _jsonl(tmp_path / "test.jsonl", TEST_ROWS)
    task = load_task(f"jsonl:{test}", examples=train)
    assert task.examples_file == str(train)
    assert f"{train}:t-scored" not in [e.origin for e in task.few_shot]
    config, _ = build_grid(task, ["tiny"], [None], {})[0]
    extractor = Extractor(config, loaded=tiny, examples=task.few_shot)
    prompt = prompting.render(tiny.tokenizer, prompting.build_messages(
        extractor.spec, TEST_ROWS[1]["text"], examples=extractor.examples))
    assert TRAIN_ROWS[2]["text"] in prompt and TRAIN_ROWS[3]["text"] in prompt
    assert TEST_ROWS[0]["text"] not in prompt  # the scored text that is also in train.jsonl

    out = tmp_path / "results"
    run_eval(task=f"jsonl:{test}", models=[str(tiny_model_dirs["llama"])], adapters=["none"],
             set_options=["max_attempts=1", "max_new_tokens=128"], examples=train, limit=None,
             out=out, report_only=False)
    [meta_path] = out.glob("*.config.json")
    meta = json.loads(meta_path.read_text())
    assert meta["config"]["examples"] == str(train)
    assert meta["prompt_examples"] == [f"{train}:t-both", f"{train}:t-heat"]
    assert f"--examples {train}" in meta["command"]
    lines = [json.loads(line) for line in
             meta_path.with_name(meta_path.name.replace(".config.json", ".jsonl"))
             .read_text().splitlines()]
    shares = [line["empty_answer"] for line in lines]
    assert len(shares) == 2 and all(isinstance(share, bool) for share in shares)
    [run] = json.loads((out / "results.json").read_text())["tasks"][f"jsonl:{test}"]["runs"]
    assert run["empty_answer_rate"] == sum(shares) / 2
    assert "| empty |" in (out / "report.md").read_text()


def test_examples_file_holding_only_scored_texts_is_refused(tmp_path):
    _schema(tmp_path)
    test = _jsonl(tmp_path / "test.jsonl", TEST_ROWS)
    with pytest.raises(TaskError, match="every text in it is also a scored text"):
        load_task(f"jsonl:{test}", examples=test)


def test_without_examples_a_jsonl_task_uses_the_schemas_own(tmp_path):
    _schema(tmp_path, examples=[{"text": "Own example.", "gold": FILLED}])
    task = load_task(f"jsonl:{_jsonl(tmp_path / 'test.jsonl', TEST_ROWS)}")
    assert [e.text for e in task.few_shot] == ["Own example."] and task.examples_file is None


# --- the empty-answer share ---------------------------------------------------------------------

@pytest.mark.parametrize("gold, answer, empty", [
    (FILLED, {"records": [], "synthesis_temperature": None}, True),
    (FILLED, None, True),  # no answer at all
    (FILLED, {"records": [{"host_material": " ", "dopant": ""}]}, True),  # blanks only
    ({"records": [], "flag": True}, {"records": []}, None),  # booleans are no content
    ({"records": []}, {"records": [{"host_material": "ZnO"}]}, None),  # nothing to miss
    (FILLED, {"records": [], "synthesis_temperature": 0}, False),  # a number is content
    (FILLED, {"records": [{"host_material": "", "dopant": "Mn"}]}, False),
])
def test_empty_answer_of_one_example(gold, answer, empty):
    assert empty_answer(gold, answer) is empty


def test_empty_share_in_the_result_line_summary_and_table(tmp_path):
    schema = str(_schema(tmp_path))
    task = load_task(f"jsonl:{_jsonl(tmp_path / 'test.jsonl', TEST_ROWS)}")
    extraction = Extraction(source="s1", sha256="0", schema={}, model={},
                            records=[{"records": [], "synthesis_temperature": None}])
    line = result_line(task, task.examples[0], extraction, seconds=0.5)
    assert line["empty_answer"] is True
    scores = {"fields": {}, "links": {}, "exact": 0}
    lines = [{"id": str(i), "normalised": scores, "empty_answer": value}
             for i, value in enumerate([True, False, None, True])]
    row = summarise({"task": "jsonl:x", "schema": schema, "options": {}}, lines)
    assert row["empty_answer_rate"] == pytest.approx(2 / 3)
    header, _, values = markdown_table("jsonl:x", [row]).splitlines()
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")],
                     [c.strip() for c in values.strip("|").split("|")]))
    assert cells["empty"] == "0.667"


# --- Reflexion cues from the schema's words ---------------------------------------------------

def _missing(spec, answer: dict, text: str) -> list[str]:
    _, signals = evaluate(spec, json.dumps(answer), text, Grounder(Document.from_text(text)))
    return signals["missing"]


def test_cues_are_the_distinctive_words_of_each_fields_name_and_description(tmp_path):
    spec = get_schema(str(_schema(tmp_path)))
    cues = spec.extra["cues"]
    assert cues["synthesis_temperature"] == r"(?i)\b(?:synthesis|temperature|anneal)\w*"
    # a root list's cue comes from its items' names and descriptions too
    assert re.search(cues["records"], "two DOPANTS") and re.search(cues["records"], "host")
    assert not re.search(cues["records"], "one entry per record")  # stop words: no cue


def test_an_empty_answer_to_a_text_with_the_cue_words_is_a_missing_signal(tmp_path):
    spec = get_schema(str(_schema(tmp_path)))
    empty = {"records": [], "synthesis_temperature": None}
    assert _missing(spec, empty, "The films were Annealed at 500 C.") == [
        "synthesis_temperature is empty but the text mentions 'Annealed'"]
    assert _missing(spec, empty, "The weather was fine on Tuesday.") == []
    blanks = {"records": [{"host_material": "", "dopant": ""}]}
    assert _missing(spec, blanks, "Mn-doped ZnO films.") == [
        "records is empty but the text mentions 'doped'"]
    filled = {"records": [{"host_material": "ZnO", "dopant": "Mn"}]}
    assert _missing(spec, filled, "Mn-doped ZnO films.") == []


def test_words_from_the_schema_are_escaped_not_read_as_a_regex(tmp_path):
    notes = {"type": "string", "description": ".* matches (anything+) [a-z]?"}
    spec = get_schema(str(_schema(tmp_path, notes=notes)))
    assert spec.extra["cues"]["notes"] == r"(?i)\b(?:notes|matches|anything)\w*"
    assert _missing(spec, {"records": [], "notes": None}, "zzz qq") == []


def test_x_cues_replaces_or_turns_off_a_derived_cue(tmp_path):
    spec = get_schema(str(_schema(tmp_path, calcined={"type": "boolean", "x-cues": r"\bcalcin"},
                                  notes={"type": "string", "x-cues": False})))
    assert spec.extra["cues"]["calcined"] == r"\bcalcin" and "notes" not in spec.extra["cues"]
    assert _missing(spec, {"records": [], "calcined": None}, "calcined at 900 C") == [
        "calcined is empty but the text mentions 'calcin'"]


@pytest.mark.parametrize("cue, problem", [("(unclosed", "not a valid regular expression"),
                                          ("", "must be a regular expression or false")])
def test_a_bad_x_cues_names_the_file_and_the_property(tmp_path, cue, problem):
    path = _schema(tmp_path, notes={"type": "string", "x-cues": cue})
    with pytest.raises(SchemaError) as info:
        get_schema(str(path))
    assert f"{path}: property 'notes'" in str(info.value) and problem in str(info.value)
