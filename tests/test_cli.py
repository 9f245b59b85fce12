"""The command line: bad input gives one clear error, a non-zero exit and no output file.

Commands run in this process through ``run_app`` (the wrapper ``matextract`` itself uses,
which turns our errors into ``error: ...`` and exit code 2); one test runs the installed
``matextract`` entry point in a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def matextract(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m app ARGS...`` in a new process (tests/test_bench.py uses it too)."""
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty.txt").write_text("")
    (tmp / "junk.txt").write_bytes(bytes(range(256)) * 8)
    (tmp / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    (tmp / "paper.docx").write_bytes(b"PK\x03\x04")
    (tmp / "ok.txt").write_text("Mn-doped ZnO films.")
    (tmp / "bad_schema.json").write_text("{not json")
    (tmp / "array_schema.json").write_text('{"type": "array"}')
    return {
        "empty file": (["extract", str(tmp / "empty.txt")], "empty"),
        "binary junk": (["extract", str(tmp / "junk.txt")], "binary"),
        "corrupt pdf": (["extract", str(tmp / "corrupt.pdf")], "PDF"),
        "unknown extension": (["extract", str(tmp / "paper.docx")], ".docx"),
        "missing path": (["extract", str(tmp / "nope.txt")], "not found"),
        "bad schema file": (["extract", str(tmp / "ok.txt"), "--schema",
                             str(tmp / "bad_schema.json")], "not valid JSON"),
        "schema not an object": (["extract", str(tmp / "ok.txt"), "--schema",
                                  str(tmp / "array_schema.json")], "object schema"),
        "unknown schema": (["extract", str(tmp / "ok.txt"), "--schema", "alloys"],
                           "unknown schema"),
        "unknown model": (["extract", str(tmp / "ok.txt"), "--model", "gpt-9"],
                          "unknown model"),
    }


BAD_CASES = ["empty file", "binary junk", "corrupt pdf", "unknown extension", "missing path",
             "bad schema file", "schema not an object", "unknown schema", "unknown model"]
NAMES_THE_FILE = BAD_CASES[:5]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_one_clear_error_and_no_output(case, tmp_path, cli):
    args, expected = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.jsonl"
    result = cli(*args, "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and expected in result.stderr
    hints = result.stderr.splitlines()[1:]  # the error's hint, if it has one
    assert len(hints) <= 1 and all(line.startswith("  hint: ") for line in hints)
    if case in NAMES_THE_FILE:
        assert result.stderr.startswith(f"error: {args[1]}")  # "error: <file>: <problem>"
    assert not out.exists() and result.stdout == ""


def test_the_installed_entry_point_reports_bad_input_as_one_error(tmp_path):
    """A real process through the console script: exit code and stderr as a user sees them."""
    entry = Path(sys.executable).with_name("matextract")
    assert entry.exists(), "pip install -e . installs the matextract command"
    (tmp_path / "empty.txt").write_text("")
    result = subprocess.run([str(entry), "extract", str(tmp_path / "empty.txt")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MATEXTRACT_HOME": str(tmp_path / "home")})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'empty.txt'}: ")
    first, *hints = result.stderr.splitlines()
    assert "empty" in first and all(line.startswith("  hint: ") for line in hints)
    assert result.stdout == ""


def test_unreadable_file_is_reported(tmp_path, cli):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = tmp_path / "locked.txt"
    path.write_text("text")
    path.chmod(0)
    result = cli("extract", str(path))
    assert result.returncode == 2 and "locked.txt" in result.stderr


def test_schemas_and_models_list(cli):
    schemas = cli("schemas")
    assert schemas.returncode == 0
    for name in ("doping", "general", "mof"):
        assert f"{name} (v1)" in schemas.stdout
    listed = cli("models", "list")
    assert listed.returncode == 0 and "smollm2-135m" in listed.stdout


@pytest.mark.slow  # embeds with the shipped MiniLM model
def test_index_build_is_incremental_and_queryable(tmp_path, cli):
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "a.txt").write_text("ZIF-8 is a zeolitic imidazolate framework that adsorbs CO2.")
    (papers / "b.md").write_text("# Doping\nMn-doped ZnO thin films were grown by PLD.")
    (papers / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    first = cli("index", "build", str(papers))
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["documents_added"] == 2 and summary["files_failed"] == 1
    assert "broken.pdf" in first.stderr
    again = json.loads(cli("index", "build", str(papers)).stdout)
    assert again["documents_added"] == 0 and again["documents_already_indexed"] == 2
    hits = json.loads(cli("index", "query", str(papers), "metal-organic framework for "
                          "carbon dioxide", "--k", "1").stdout)
    assert hits[0]["source"].endswith("a.txt")
