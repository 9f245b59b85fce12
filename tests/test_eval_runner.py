"""The evaluation grid on a tiny random LLaMA: per-example lines, resume after a kill, the
report (with the published rows) and its plots, and the CLI's errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli.eval import run_eval
from app.cli.main import app as matextract_app
from eval.runner import RESULT_KEYS, parse_options
from extraction.errors import ConfigError, ModelNotFoundError
from extraction.pipeline import Extractor
from extraction.storage.jsonl import read_jsonl

# No reflection, no few-shot turns, a small budget: the tiny model's answers come quickly.
OPTIONS = ["max_attempts=1,2", "reflect_with_model=false", "few_shot=0",
           "max_new_tokens=96"]


def _run(model: Path, out: Path) -> None:
    run_eval(task="doping", models=[str(model)], adapters=["none"], set_options=OPTIONS,
             limit=3, out=out, report_only=False)


@pytest.fixture(scope="module")
def grid_dir(tiny_model_dirs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "results"
    _run(tiny_model_dirs["llama"], out)
    return out


def _results(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def test_grid_writes_one_line_per_example_and_the_config(grid_dir):
    files = _results(grid_dir)
    assert len(files) == 2
    assert sorted(json.loads(p.with_name(p.name[:-6] + ".config.json").read_text())
                  ["options"]["max_attempts"] for p in files) == [1, 2]
    for path in files:
        rows, bad = read_jsonl(path, required=RESULT_KEYS)
        assert bad == 0 and len(rows) == 3
        assert [r["id"] for r in rows] == [f"10.1007/s10853-017-1104-8#{i}" for i in range(3)]
        for row in rows:
            assert row["parses"] and row["valid"]  # constrained decoding, even random weights
            assert set(row["prediction"]) == {"hosts", "dopants", "links"}
            assert row["raw"] and row["new_tokens"] > 0 and row["seconds"] > 0
            assert row["rss_mb"] > 0 and 1 <= row["attempts"] <= 2
            assert set(row["strict"]["fields"]) == {"hosts", "dopants"}
            assert set(row["normalised"]["links"]) == {"host-dopant"}
        meta = json.loads(path.with_name(path.name[:-6] + ".config.json").read_text())
        assert meta["task"] == "doping" and meta["config"]["reflect_with_model"] is False
        attempts = meta["options"]["max_attempts"]
        assert f"max_attempts={attempts}" in path.name and meta["model"]["parameters"] > 0
        assert all(row["attempts"] <= attempts for row in rows)
        assert meta["few_shot_origins"][0].startswith("nerre-doping-train:")
        assert path.name.startswith("doping_tiny-llama")


def test_report_has_published_rows_columns_and_plots(grid_dir, tiny_model_dirs):
    report = (grid_dir / "report.md").read_text()
    tables = [[line for line in block.splitlines() if line.startswith("|")]
              for block in report.split("\n\n")]
    table, tradeoffs, calibration = [t for t in tables if t][:3]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    for column in ("model", "adapter", "options", "strict host F1", "strict dopant F1",
                   "strict triplet F1", "norm. host F1", "norm. link F1", "parse", "valid",
                   "grounded", "s/example", "tok/s", "peak MB"):
        assert column in header
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert len(rows) == 4
    published = [r for r in rows if r[header.index("options")] == "published"]
    assert {r[0] for r in published} == {"GPT-3 davinci, fine-tuned", "Llama-2-70B, LoRA"}
    llama = next(r for r in published if r[0].startswith("Llama"))
    assert llama[header.index("strict triplet F1")] == "0.821"
    ours = [r for r in rows if r not in published]
    assert sorted(r[header.index("options")] for r in ours) == [
        "max_attempts=1, reflect_with_model=False, few_shot=0, max_new_tokens=96",
        "max_attempts=2, reflect_with_model=False, few_shot=0, max_new_tokens=96"]
    assert all(r[header.index("parse")] == "1.000" for r in ours)
    results = json.loads((grid_dir / "results.json").read_text())
    runs = results["tasks"]["doping"]["runs"]
    assert len(runs) == 2 and all(r["n"] == 3 and r["peak_rss_mb"] for r in runs)
    # accuracy against size, speed and memory: published rows and both runs, a front
    assert "Pareto front" in tradeoffs[0] and len(tradeoffs) == 2 + 4
    assert sum("**yes**" in line for line in tradeoffs) >= 1
    # every value's confidence is measured against the gold: one calibration row per run
    assert "ECE" in calibration[0] and len(calibration) == 2 + 2
    for run in runs:
        c = run["calibration"]
        assert c["values"] > 0 and 0.0 <= c["ece"] <= 1.0 and c["curve"][-1]["coverage"] == 1.0
        assert run["calibration_source"] == "uncalibrated"
    for name in ("f1_vs_size", "f1_vs_latency", "option_effects", "calibration", "tradeoffs"):
        png = grid_dir / f"doping-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (f"matextract eval --task doping --model {tiny_model_dirs['llama']} --adapter none "
            "--set max_attempts=1,2 --set reflect_with_model=false --set few_shot=0 "
            f"--set max_new_tokens=96 --limit 3 --out {grid_dir}") in report


def test_resume_redoes_only_torn_and_missing_examples(grid_dir, tiny_model_dirs, tmp_path,
                                                      monkeypatch):
    folder = tmp_path / "copy"
    shutil.copytree(grid_dir, folder)
    first, second = _results(folder)
    lines = first.read_text().splitlines(keepends=True)
    kept_first = json.loads(lines[0])
    # A kill mid-write: the last line is torn; and one earlier line is gone entirely.
    first.write_text(lines[0] + lines[2][: len(lines[2]) // 2])
    untouched = second.read_text()

    calls = []
    original = Extractor.extract_group

    def counting(self, documents):
        calls.extend(document.source for document in documents)
        return original(self, documents)

    monkeypatch.setattr(Extractor, "extract_group", counting)
    _run(tiny_model_dirs["llama"], folder)

    assert sorted(calls) == sorted(json.loads(lines[i])["id"] for i in (1, 2))
    rows, bad = read_jsonl(first, required=RESULT_KEYS)
    assert bad == 0 and sorted(r["id"] for r in rows) == sorted(
        json.loads(line)["id"] for line in lines)
    assert rows[0] == kept_first  # done work is kept as it was (same timestamp)
    assert second.read_text() == untouched
    calls.clear()
    _run(tiny_model_dirs["llama"], folder)  # everything done: nothing runs
    assert calls == []


def test_report_only_through_typer(grid_dir):
    result = CliRunner().invoke(matextract_app, ["eval", "--report-only", "--out", str(grid_dir)])
    assert result.exit_code == 0, result.output
    assert "| Llama-2-70B, LoRA |" in result.output


@pytest.mark.parametrize("items, message, hint", [
    (["bogus=1"], "unknown option 'bogus'", "max_attempts"),
    (["model=x"], "use --model", "few_shot"),
    (["max_attempts=9"], "bad value '9' for option 'max_attempts'", "Reflexion"),
    (["constrained=maybe"], "bad value 'maybe' for option 'constrained'", "constrain"),
    (["max_attempts"], "not KEY=VALUE", "--set"),
])
def test_bad_options_name_the_problem(items, message, hint):
    with pytest.raises(ConfigError) as info:
        parse_options(items)
    assert message in info.value.message and hint in info.value.hint


def test_options_are_typed():
    assert parse_options(["constrained=true,false", "few_shot=none,0,2", "retrieval=off"]) == {
        "constrained": [True, False], "few_shot": [None, 0, 2], "retrieval": ["off"]}


def test_unknown_model_fails_before_any_work(tmp_path):
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        run_eval(task="doping", models=["no-such-model"], adapters=None, set_options=None,
                 limit=1, out=tmp_path / "x", report_only=False)
    assert not (tmp_path / "x").exists()


def test_a_jsonl_task_whose_gold_the_bounds_cannot_hold_stops_before_any_work(
        tiny_model_dirs, tmp_path):
    from eval.runner import build_grid, check_reachable
    from eval.tasks import TaskError, load_task

    (tmp_path / "notes.json").write_text(json.dumps({"type": "object", "properties": {
        "procedure": {"type": "string"}}}))  # default bound: 64 characters
    long_value = "stirred for two hours in ethanol, dried at 80 C and calcined at 500 C in air"
    lines = [{"id": f"t{n}", "text": f"Sample {n} was {long_value}.", "schema": "notes.json",
              "gold": {"procedure": long_value if n < 2 else "stirred"}} for n in range(5)]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "results"
    with pytest.raises(TaskError, match=r"5 examples; 2 with gold that the schema's own bounds "
                                        r"cannot produce \(t0, t1\)"):
        run_eval(task=f"jsonl:{path}", models=[str(tiny_model_dirs["llama"])],
                 adapters=["none"], set_options=OPTIONS, limit=1, out=out, report_only=False)
    assert not out.exists()
    task = load_task(f"jsonl:{path}")
    grid = build_grid(task, [str(tiny_model_dirs["llama"])], [None], {})
    assert check_reachable(task, grid, accept=True) == [
        f"jsonl:{path}: 5 examples; 2 with gold that the schema's own bounds cannot produce "
        "(t0, t1)"]
