"""The evaluation results page: folders written by eval.report, read without writing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.web import eval_results
from app.web import limits

TASK = "jsonl:mine.jsonl"


def _line(example: str, tp: int, fp: int, fn: int) -> dict:
    counts = {"fields": {"hosts": [tp, fp, fn]}, "links": {}, "exact": int(fp == fn == 0)}
    return {"id": example, "strict": None, "normalised": counts, "parses": True,
            "valid": True, "grounded": 2, "ungrounded": 1, "new_tokens": 20,
            "generation_s": 0.5, "seconds": 0.6, "attempts": 1, "rss_mb": 900.0}


@pytest.fixture
def eval_folder(tmp_path: Path) -> Path:
    """A results folder as 'matextract eval' leaves it: one run, its report and plots."""
    pytest.importorskip("matplotlib")
    from eval.report import write_report

    folder = tmp_path / "eval-results" / "mine"
    folder.mkdir(parents=True)
    meta = {"id": "run1", "task": TASK, "model": {"name": "tiny-model", "parameters": 1e6},
            "config": {"model": "tiny-model", "adapter": None}, "options": {},
            "command": "matextract eval --task jsonl:mine.jsonl --model tiny-model --out x"}
    (folder / "run1.config.json").write_text(json.dumps(meta))
    lines = [_line("a", 1, 0, 0), _line("b", 0, 1, 1)]
    (folder / "run1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    write_report(folder)
    return folder


def test_folders_are_found_and_read_from_the_report(eval_folder):
    root = eval_folder.parent
    assert eval_results.result_folders(root) == [eval_folder]
    assert eval_results.result_folders(root / "missing") == []
    view = eval_results.load(eval_folder)
    assert not view.live and view.examples == 2
    assert "tiny-model" in view.tables[TASK] and "| model |" in view.tables[TASK]
    assert view.images and all(p.suffix == ".png" for p in view.images)
    assert view.report is not None and "![" not in view.report


def test_results_newer_than_the_report_are_summarised_live(eval_folder):
    results = eval_folder / "run1.jsonl"
    with results.open("a") as handle:
        handle.write(json.dumps(_line("c", 1, 0, 0)) + "\n")
    later = (eval_folder / "results.json").stat().st_mtime + 10
    os.utime(results, (later, later))
    before = {p.name: p.stat().st_mtime for p in eval_folder.iterdir()}
    view = eval_results.load(eval_folder)
    assert view.live and view.examples == 3 and "tiny-model" in view.tables[TASK]
    assert {p.name: p.stat().st_mtime for p in eval_folder.iterdir()} == before  # read-only


def test_the_page_shows_tables_and_plots(eval_folder, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(limits.ENV_EVAL_DIR, str(eval_folder.parent))
    at = AppTest.from_string("from app.web.ui_eval import page\npage()", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "| model |" in text and "tiny-model" in text
    assert at.get("image") and at.get("image")[0].captions[0].endswith(".png")


def test_the_page_explains_how_to_get_results(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(limits.ENV_EVAL_DIR, str(tmp_path / "nothing"))
    at = AppTest.from_string("from app.web.ui_eval import page\npage()", default_timeout=60)
    at.run()
    assert not at.exception and "matextract eval" in at.info[0].value
