"""Fine-tuning on a user's own annotated JSONL tells the truth: every example is used (long
paragraphs grow the token budget, long gold values raise the schema's bounds, both stored in
the adapter card and applied at inference), and what cannot be used stops training before
anything is written, naming the examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extraction.config import ExtractorConfig
from extraction.datasets.annotated import TaskError
from extraction.pipeline import adapted_schema
from finetune.config import FinetuneConfig
from finetune.data import ExcludedExamplesError
from finetune.trainer import CARD_FILE, train

ROOT = Path(__file__).resolve().parents[1]
LONG_PROCEDURE = ("the precursors were dissolved in ethanol, stirred for two hours at room "
                  "temperature, dried at 80 C and calcined in air")  # over 64 characters
SCHEMA = {"type": "object", "description": "Synthesis steps of a sample.", "properties": {
    "samples": {"type": "array", "items": {"type": "object", "properties": {
        "material": {"type": "string", "description": "the material made"},
        "procedure": {"type": "string", "description": "how it was made"}},
        "required": ["material", "procedure"]}}},
    "required": ["samples"]}


def _paragraph(number: int) -> str:
    filler = " ".join(f"Observation {number}.{k}: the sample was characterised by XRD, SEM "
                      "and Raman spectroscopy, which showed a single phase." for k in range(12))
    return f"Sample S{number} of ZnO was prepared: {LONG_PROCEDURE}. {filler}"


def _task(folder: Path, *, lines: list[str] | None = None, schema: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synthesis.json").write_text(json.dumps(schema or SCHEMA))
    if lines is None:
        lines = [json.dumps({"id": f"p{n}", "text": _paragraph(n), "schema": "synthesis.json",
                             "gold": {"samples": [{"material": f"ZnO S{n}",
                                                   "procedure": LONG_PROCEDURE}]}})
                 for n in range(6)]
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(model_dir: Path, path: Path, **overrides) -> FinetuneConfig:
    values = dict(task=f"jsonl:{path}", model=str(model_dir), rank=4, alpha=8, dropout=0.0,
                  epochs=1, batch_size=2, warmup_steps=0, val_fraction=0.0, seed=1,
                  retry_pairs=0.0)  # one pair per example: the counts below are examples
    values.update(overrides)
    return FinetuneConfig(**values)


def test_long_paragraphs_and_long_values_are_all_trained_on(tiny_model_dirs, tmp_path):
    path = _task(tmp_path / "task")
    summaries = []
    card = train(_config(tiny_model_dirs["llama"], path), tmp_path / "adapter",
                 on_data=summaries.append)
    data = card["data"]
    assert data["examples"] == data["pairs"] == 6 and data["excluded"] == {}
    assert data["longest_pair_tokens"] > 512 and data["max_length"] == data["longest_pair_tokens"]
    bounds = card["inference"]["bounds"]["strings"]
    assert bounds["samples[].procedure"] >= len(LONG_PROCEDURE)
    assert "no example excluded" in summaries[0].text()
    saved = json.loads((tmp_path / "adapter" / CARD_FILE).read_text())
    assert saved["inference"]["bounds"] == card["inference"]["bounds"]
    assert saved["schemas"] == ["synthesis"] and "schemas" not in saved["inference"]
    assert saved["multi_schema"] is False
    # inference with the adapter accepts what it was taught; the plain schema does not
    gold = {"samples": [{"material": "ZnO", "procedure": LONG_PROCEDURE}]}
    config = ExtractorConfig(schema_name=str(path.parent / "synthesis.json"),
                             model=str(tiny_model_dirs["llama"]))
    with pytest.raises(Exception, match="at most 64"):
        adapted_schema(config).model.model_validate(gold)
    tuned = config.model_copy(update={"adapter": str(tmp_path / "adapter")})
    assert adapted_schema(tuned).model.model_validate(gold).samples[0].procedure \
        == LONG_PROCEDURE


def test_a_small_budget_that_leaves_examples_out_stops_unless_accepted(tiny_model_dirs,
                                                                      tmp_path):
    path = _task(tmp_path / "task")
    short = {"id": "short", "text": "ZnO was made.", "schema": "synthesis.json",
             "gold": {"samples": [{"material": "ZnO", "procedure": "made"}]}}
    path.write_text(path.read_text() + json.dumps(short) + "\n")
    with pytest.raises(ExcludedExamplesError,
                       match=r"(?s)6 of 7 training pairs .*excluded 6: longer than "
                             r"max_length 256 tokens \(p0, p1, p2"):
        train(_config(tiny_model_dirs["llama"], path, max_length=256), tmp_path / "no")
    assert not (tmp_path / "no").exists()
    card = train(_config(tiny_model_dirs["llama"], path, max_length=256,
                         accept_exclusions=True), tmp_path / "yes")
    assert card["data"]["excluded"] == {"longer than max_length 256 tokens": 6}
    assert card["data"]["pairs"] == 1 and card["data"]["excluded_ids"][
        "longer than max_length 256 tokens"] == [f"p{n}" for n in range(6)]


def test_a_broken_line_stops_the_command_before_training_and_names_the_line(
        tiny_model_dirs, tmp_path):
    path = _task(tmp_path / "task")
    lines = path.read_text().splitlines()
    lines[3] = lines[3][:40]  # torn: not JSON
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "adapter"
    result = subprocess.run(
        [sys.executable, "-m", "app", "finetune", "--task", f"jsonl:{path}", "--model",
         str(tiny_model_dirs["llama"]), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"{path}:4: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


BAD_INPUTS = {
    "gold that does not validate": (
        [json.dumps({"id": "a", "text": "ZnO was made.", "schema": "synthesis.json",
                     "gold": {"samples": [{"material": 7}]}})], None,
        r"train.jsonl:1: gold.samples.0.material: Input should be a valid string"),
    "a schema with no string field": (
        [json.dumps({"id": "a", "text": "It melts at 300 K.", "schema": "synthesis.json",
                     "gold": {"melting_point": 300}})],
        {"type": "object", "properties": {"melting_point": {"type": "number"}}},
        "has no string field"),
    "an empty training file": ([""], None, r"train.jsonl: no examples"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_training_files_are_one_clear_error_and_nothing_is_written(case, tiny_model_dirs,
                                                                       tmp_path):
    lines, schema, message = BAD_INPUTS[case]
    path = _task(tmp_path / "task", lines=lines, schema=schema)
    with pytest.raises(TaskError, match=message):
        train(_config(tiny_model_dirs["llama"], path), tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()
