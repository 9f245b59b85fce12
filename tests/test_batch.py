"""Batch extraction: mixed folders, resume after SIGKILL, repairs, safe paths, exports.

Runs on the tiny random LLaMA model with max_attempts=1 (about 0.3-0.5 s per document):
greedy decoding is deterministic, so an interrupted run must end equal to an uninterrupted
one, record for record.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fpdf import FPDF

from extraction.storage import exports
from extraction import models
from extraction.batch import (
    BatchOptions, OutputPaths, fingerprint, locked, open_output, run_batch, walk_folder)
from extraction.errors import ConfigError, DocumentError
from extraction.config import ExtractorConfig

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "nerre" / "doping" / "data" / "raw_data.json"
GOOD_TEXTS = {
    "a.txt": "Er3+ doped SrLaMgTaO6 phosphors were prepared by solid-state reaction.",
    "notes/b.md": "# Films\n\nN-doped ZnO films were grown by sputtering.",
    "c.html": "<html><head><title>t</title></head><body><p>Mn-doped Fe<sub>2</sub>O<sub>3"
              "</sub> nanowires.</p></body></html>",
}


def config_for(model_dir: Path, **options) -> ExtractorConfig:
    return ExtractorConfig(model=str(model_dir), max_attempts=1, device="cpu", **options)


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs):
    return tiny_model_dirs["llama"], models.load(str(tiny_model_dirs["llama"]), device="cpu")


def write_pdf(path: Path, text: str) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 6, text)
    pdf.output(str(path))


def mixed_folder(root: Path) -> tuple[set[str], dict[str, str]]:
    """(sources of the good documents, bad file -> expected reason fragment)."""
    for rel, text in GOOD_TEXTS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    write_pdf(root / "d.pdf", "Ce-doped YAG phosphor ceramics.")
    (root / "items.json").write_text(json.dumps([{"abstract": "Al doped ZnO."},
                                                 {"title": "T", "abstract": "Ga doped ZnO."}]))
    (root / "notes" / "copy_of_a.txt").write_text(GOOD_TEXTS["a.txt"])  # same content
    (root / "figure.png").write_bytes(b"\x89PNG\r\n")  # unsupported: ignored, not an error
    bad = {"corrupt.pdf": "PDF", "empty.txt": "empty", "junk.txt": "binary"}
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    (root / "empty.txt").write_bytes(b"")
    (root / "junk.txt").write_bytes(bytes(range(256)) * 8)
    good = {str(root / rel) for rel in [*GOOD_TEXTS, "d.pdf"]}
    good |= {f"{root / 'items.json'}#0", f"{root / 'items.json'}#1"}
    return good, {str(root / name): reason for name, reason in bad.items()}


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def comparable(path: Path) -> dict[str, tuple]:
    """sha256 -> what must not depend on interruptions (timings may)."""
    return {r["sha256"]: (r["source"], r["records"], r["evidence"], r["ungrounded"],
                          r["errors"], r["fingerprint"]) for r in lines_of(path)}


def test_mixed_folder_gives_one_line_per_good_document_and_one_error_per_bad(tiny, tmp_path):
    model_dir, loaded = tiny
    docs = tmp_path / "docs"
    good, bad = mixed_folder(docs)
    out = tmp_path / "out" / "results.jsonl"
    events = []
    summary = run_batch(docs, config_for(model_dir), out=out, loaded=loaded,
                        options=BatchOptions(parse_workers=1), report=events.append)

    rows = lines_of(out)
    assert sorted(r["source"] for r in rows) == sorted(good)
    assert len({r["sha256"] for r in rows}) == len(rows)
    for row in rows:
        assert row["format"] == "1" and row["schema"]["name"] == "doping"
        assert row["fingerprint"] == summary.fingerprint and row["records"]
    errors = lines_of(out.with_name("results.errors.jsonl"))
    assert sorted(e["file"] for e in errors) == sorted(bad)
    for entry in errors:
        assert bad[entry["file"]] in entry["reason"] and entry["hint"]
    assert (summary.processed, summary.failures, summary.duplicates) == (len(good), 3, 1)
    assert summary.ignored == {"unsupported .png": 1}
    assert summary.records == sum(len(r["records"]) for r in rows) and summary.docs_per_min > 0
    assert events[0]["event"] == "start"
    assert events[-1]["event"] == "summary"
    assert sum(e["event"] == "document" for e in events) == len(good)

    csv_text = (out.parent / "results.csv").read_text()
    assert csv_text.startswith("source,sha256,schema,model")
    csv_rows = list(csv.DictReader(io.StringIO(csv_text)))  # values may hold commas, quotes
    assert {row["source"] for row in csv_rows} == good
    if exports.parquet_available():
        import pyarrow.parquet as pq
        assert pq.read_table(out.parent / "results.parquet").num_rows == len(csv_rows)

    # Re-running does nothing new but reports the bad files again.
    before = out.read_bytes()
    again = run_batch(docs, config_for(model_dir), out=out, loaded=loaded,
                      options=BatchOptions(parse_workers=0))
    assert (again.processed, again.already_done, again.failures) == (0, len(good), 3)
    assert out.read_bytes() == before
    assert len(lines_of(out.with_name("results.errors.jsonl"))) == 3


def test_torn_line_and_duplicates_are_repaired_then_redone(tiny, tmp_path):
    model_dir, loaded = tiny
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"{i}.txt").write_text(f"Sample {i}: Eu-doped GaN layers number {i}.")
    out = tmp_path / "r.jsonl"
    run_batch(docs, config_for(model_dir), out=out, loaded=loaded)
    reference = comparable(out)
    lines = out.read_bytes().splitlines(keepends=True)
    # A kill mid-write: the last line is cut; the first line was written twice.
    out.write_bytes(lines[0] + b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    summary = run_batch(docs, config_for(model_dir), out=out, loaded=loaded)
    assert summary.repaired == {"torn_lines_dropped": 1, "duplicate_lines_dropped": 1}
    assert (summary.processed, summary.already_done) == (1, 2)
    assert comparable(out) == reference and len(lines_of(out)) == 3


def test_changed_options_re_extract_and_keep_the_old_lines_in_an_archive(tiny, tmp_path):
    model_dir, loaded = tiny
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(GOOD_TEXTS["a.txt"])
    out = tmp_path / "r.jsonl"
    first = run_batch(docs, config_for(model_dir), out=out, loaded=loaded)
    changed = config_for(model_dir, max_new_tokens=200)
    assert fingerprint(changed) != first.fingerprint
    second = run_batch(docs, changed, out=out, loaded=loaded)
    assert second.processed == 1 and second.repaired["moved_to_archive"]
    assert [r["fingerprint"] for r in lines_of(out)] == [second.fingerprint]
    archive = tmp_path / f"r.previous-{first.fingerprint}.jsonl"
    assert [r["fingerprint"] for r in lines_of(archive)] == [first.fingerprint]
    # The same options again: nothing to do.
    assert run_batch(docs, changed, out=out, loaded=loaded).processed == 0


def test_walk_follows_links_once_reports_loops_and_applies_globs(tmp_path):
    docs = tmp_path / "docs"
    (docs / "keep" / "deep").mkdir(parents=True)
    (docs / "drafts").mkdir()
    for rel in ["a.txt", "keep/b.md", "keep/deep/c.pdf", "drafts/d.txt", "keep/e.html"]:
        (docs / rel).write_text("x")
    (docs / "keep" / "loop").symlink_to(docs)  # back to an enclosing folder
    (docs / "self").symlink_to(docs / "self")  # points at itself
    (docs / "gone.txt").symlink_to(docs / "missing.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "f.txt").write_text("y")
    (docs / "linked").symlink_to(elsewhere)  # a real folder elsewhere: walked
    (docs / "linked_again").symlink_to(elsewhere)  # the same folder again: walked once

    walk = walk_folder(docs, exclude=["drafts"])
    rels = [os.path.relpath(display, docs) for _, display in walk.files]
    assert rels == ["a.txt", "keep/b.md", "keep/deep/c.pdf", "keep/e.html", "linked/f.txt"]
    reasons = {os.path.relpath(f["file"], docs): f["reason"] for f in walk.failures}
    assert set(reasons) == {"keep/loop", "self", "gone.txt"}
    assert "loop" in reasons["keep/loop"] and "loop" in reasons["self"]
    assert "broken" in reasons["gone.txt"]
    assert walk.ignored == {"excluded folder": 1, "folder reached again through a link": 1}

    only = walk_folder(docs, include=["*.md", "**/deep/*"], exclude=["loop", "self"])
    assert sorted(os.path.relpath(d, docs) for _, d in only.files) == ["keep/b.md",
                                                                        "keep/deep/c.pdf"]
    with pytest.raises(DocumentError, match="folder not found"):
        walk_folder(tmp_path / "nope")


def test_outputs_stay_in_the_out_folder_and_are_never_read_as_input(tiny, tmp_path):
    model_dir, loaded = tiny
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(GOOD_TEXTS["a.txt"])
    out = docs / "results.jsonl"  # inside the input folder
    for _ in range(2):
        summary = run_batch(docs, config_for(model_dir), out=out, loaded=loaded)
        assert summary.documents == 1 and summary.failures == 0
    assert sorted(p.name for p in docs.iterdir()) == sorted([
        ".results.jsonl.lock", "a.txt", "results.csv", "results.errors.jsonl", "results.jsonl",
        *(["results.parquet"] if exports.parquet_available() else [])])

    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    (tmp_path / "link.jsonl").symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        run_batch(docs, config_for(model_dir), out=tmp_path / "link.jsonl", loaded=loaded)
    with pytest.raises(ConfigError, match=".jsonl"):
        run_batch(docs, config_for(model_dir), out=tmp_path / "r.csv", loaded=loaded)
    paths = OutputPaths.for_out(tmp_path / "x.jsonl")
    with locked(paths), pytest.raises(ConfigError, match="another batch"):
        with locked(paths):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_reported(tiny, tmp_path):
    model_dir, loaded = tiny
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "locked.txt").write_text("text")
    (docs / "locked.txt").chmod(0)
    summary = run_batch(docs, config_for(model_dir), out=tmp_path / "r.jsonl", loaded=loaded)
    assert summary.failures == 1
    assert "permission" in lines_of(tmp_path / "r.errors.jsonl")[0]["reason"]


def test_flat_rows_carry_the_first_evidence_span():
    line = {"source": "a.txt", "sha256": "s", "schema": {"name": "doping"},
            "model": {"name": "m", "adapter": None}, "errors": [],
            "records": [{"hosts": ["ZnO", "GaN"], "dopants": [], "links": []}],
            "evidence": {"records[0].hosts[0]": [
                {"start": 4, "end": 7, "page": 1, "text": "ZnO", "match": "exact",
                 "sentence": "Al: ZnO."}, {"start": 9, "end": 12, "page": 1, "text": "ZnO"}]}}
    rows = list(exports.flat_rows([line, {**line, "records": [], "evidence": {}}]))
    assert [(r["field"], r["path"], r["value"], r["evidence_count"]) for r in rows[:2]] == [
        ("hosts", "hosts[0]", "ZnO", 2), ("hosts", "hosts[1]", "GaN", 0)]
    assert rows[0]["evidence_start"] == 4 and rows[0]["evidence_sentence"] == "Al: ZnO."
    assert rows[1]["grounded"] is False and rows[2]["value"] is None  # a document, no values


def test_open_output_keeps_a_complete_last_line_and_refuses_foreign_files(tmp_path):
    paths = OutputPaths.for_out(tmp_path / "r.jsonl")
    paths.out.write_text('{"sha256": "a", "fingerprint": "f"}\n{"sha256": "b", "fingerprint": "f"}')
    assert open_output(paths, "f").done == {"a", "b"}
    assert paths.out.read_text().endswith('"f"}\n')
    foreign = '{"abstract": "Al-doped ZnO."}\n{"abstract": "Ga-doped ZnO."}\n'
    paths.out.write_text(foreign)  # e.g. --out pointed at an input collection
    with pytest.raises(ConfigError, match="not a batch record"):
        open_output(paths, "f")
    assert paths.out.read_text() == foreign
    paths.out.write_text('{"abstract": "one line, no newline"}')
    with pytest.raises(ConfigError, match="line 1"):
        open_output(paths, "f")


# --- SIGKILL at random points -----------------------------------------------------------------

def _abstract_folder(root: Path, n_files: int, n_items: int) -> None:
    raw = json.loads(RAW.read_text())
    root.mkdir()
    for i, item in enumerate(raw[:n_files]):
        (root / f"{i:02d}.txt").write_text(f"{item['title']}\n{item['abstract'][:600]}")
    (root / "more.jsonl").write_text("".join(
        json.dumps({"abstract": item["abstract"][:400]}) + "\n"
        for item in raw[n_files:n_files + n_items]))


def _count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _batch_process(docs: Path, out: Path, model_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli.batch", str(docs), "--out", str(out),
         "--model", str(model_dir), "--attempts", "1", "--device", "cpu", "--no-export",
         "--batch-size", "2", *extra],  # small groups: lines land often, kills fall between
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill reaches its parse worker
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


# Enough documents that three kills a few lines apart land before the end even on a fast CPU
# (with 12, a machine with AVX-512 finished the batch before the second kill).
KILLED_FILES, KILLED_ITEMS = 20, 8
KILLED_DOCUMENTS = KILLED_FILES + KILLED_ITEMS


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tiny, tmp_path):
    model_dir, loaded = tiny
    docs = tmp_path / "docs"
    _abstract_folder(docs, n_files=KILLED_FILES, n_items=KILLED_ITEMS)
    reference = tmp_path / "reference.jsonl"
    run_batch(docs, config_for(model_dir), out=reference, loaded=loaded,
              options=BatchOptions(export=False))
    expected = comparable(reference)
    assert len(expected) == KILLED_DOCUMENTS

    out = tmp_path / "killed" / "results.jsonl"
    rng = random.Random(6)
    kills = 0
    for _ in range(3):
        target = _count_lines(out) + rng.randint(1, 3)
        process = _batch_process(docs, out, model_dir, "--quiet")
        deadline = time.monotonic() + 60
        while _count_lines(out) < target and process.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.4))  # somewhere inside the next document (or its write)
        if process.poll() is not None:
            break
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        kills += 1
        complete = [json.loads(x) for x in out.read_bytes().split(b"\n")[:-1]]
        assert len({r["sha256"] for r in complete}) == len(complete)  # never a duplicate
    assert kills >= 2, "the batch finished before it could be killed; slow it down"

    final = _batch_process(docs, out, model_dir, "--log-json")
    stdout, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr.decode()[-2000:]
    events = [json.loads(line) for line in stderr.decode().splitlines()]  # all JSON
    assert events[-1]["event"] == "summary"
    summary = json.loads(stdout)
    assert summary["already_done"] + summary["processed"] == KILLED_DOCUMENTS
    assert summary["failures"] == 0 and summary["output_documents"] == KILLED_DOCUMENTS
    rows = lines_of(out)
    assert len(rows) == len({r["sha256"] for r in rows}) == KILLED_DOCUMENTS  # each once
    assert comparable(out) == expected  # identical to the uninterrupted run


def test_cli_reports_a_missing_folder_and_writes_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.batch", str(tmp_path / "nope"), "--out",
         str(tmp_path / "o" / "r.jsonl")], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    assert "folder not found" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_min_confidence_sends_low_values_to_review_and_loses_none(tiny, tmp_path):
    model_dir, loaded = tiny
    docs = tmp_path / "docs"
    docs.mkdir()
    for rel, text in GOOD_TEXTS.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    out = tmp_path / "r.jsonl"
    lines_run = run_batch(docs, config_for(model_dir), out=out, loaded=loaded)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    # A random model's values are all near 0: spread them so that a threshold splits them
    # (the output is what a re-run exports from; the extraction is not repeated).
    keys = [(line, key) for line in lines for key in line["confidence"]]
    assert keys, "the tiny model wrote no value to split"
    for position, (line, key) in enumerate(keys):
        line["confidence"][key] = round((position + 0.5) / len(keys), 3)
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    every = sorted((line["sha256"], c) for line in lines for c in line["confidence"].values())
    threshold = 0.5
    summary = run_batch(docs, config_for(model_dir), out=out, loaded=loaded,
                        options=BatchOptions(min_confidence=threshold))
    assert summary.processed == 0 and lines_run.processed == len(lines)
    review = [json.loads(x) for x in OutputPaths.for_out(out).review.read_text().splitlines()]
    assert summary.review_values == len(review) > 0
    assert all(item["confidence"] < threshold or "entry" in item for item in review)
    rows = list(csv.DictReader(io.StringIO(OutputPaths.for_out(out).csv.read_text())))
    exported = sorted((row["sha256"], float(row["confidence"])) for row in rows
                      if row["value"])
    assert all(c >= threshold for _, c in exported)
    # every value is in the export or in the review file, once
    assert sorted(exported + [(item["sha256"], item["confidence"]) for item in review]) == every
    # the JSONL output still holds every value
    assert [json.loads(x) for x in out.read_text().splitlines()] == lines
    with pytest.raises(ConfigError, match="between 0 and 1"):
        BatchOptions(min_confidence=1.5)
