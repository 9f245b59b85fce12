"""The web UI's pure helpers: highlighting, record editing, job state, exports, launcher."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from app.cli.serve import streamlit_command
from app.web import export, highlight, review
from app.web.state import DocumentResult, Job, table_rows
from extraction.checking.grounding import Grounder
from extraction.errors import ConfigError
from extraction.schemas import builtin_names, get_schema
from extraction.types import Document, Evidence, FieldPath, Span

# --- highlight -------------------------------------------------------------------------------


def _spans(text: str, value: str) -> list[dict]:
    return [{"start": m.start(), "end": m.end(), "text": value, "match": "exact", "page": 1}
            for m in re.finditer(re.escape(value), text)]


def _evidence(key: str, value: str, spans: list[dict]) -> Evidence:
    return Evidence(FieldPath.parse(key), value, tuple(Span.from_dict(s) for s in spans))


def test_text_and_values_are_escaped():
    text = "ZnO <script>alert(1)</script> & Al<sub>"
    evidence = [_evidence("records[0].hosts[0]", "ZnO", _spans(text, "ZnO")),
                _evidence("records[0].dopants[0]", "Al<sub>", _spans(text, "Al<sub>"))]
    out = highlight.render(text, highlight.marks_from_evidence(evidence),
                           missing=[_evidence("records[0].hosts[1]", '"><img src=x>', [])])
    assert "<script>" not in out and "&lt;script&gt;" in out and "&amp;" in out
    assert "<img" not in out and "&lt;img src=x&gt;" in out
    assert ">Al&lt;sub&gt;</mark>" in out


def test_overlapping_spans_are_cut_into_flat_segments():
    text = "ZnO films doped with Al"
    evidence = [_evidence("records[0].hosts[0]", "ZnO films",
                          [{"start": 0, "end": 9, "text": "ZnO films"}]),
                _evidence("records[1].hosts[0]", "ZnO", [{"start": 0, "end": 3, "text": "ZnO"}])]
    out = highlight.render(text, highlight.marks_from_evidence(evidence), focus=0)
    body = out.split('data-testid="mx-document">')[1]
    assert "<mark" not in re.sub(r"<mark[^>]*>[^<]*</mark>", "", body)  # no nesting
    marks = re.findall(r'<mark class="([^"]*)"[^>]*data-path="([^"]*)"[^>]*>([^<]*)</mark>',
                       body)
    assert [(m[2], m[1]) for m in marks] == [("ZnO", "records[0].hosts[0]"),
                                             (" films", "records[0].hosts[0]")]
    assert all("mx-focus" in m[0] for m in marks)
    dimmed = highlight.render(text, highlight.marks_from_evidence(evidence), focus=1)
    assert 'class="mx-mark mx-dim"' in dimmed and "mx-focus" in dimmed


def test_pages_are_marked_and_paths_parsed():
    text = "page one\n\npage two ZnO"
    document = Document(text, "x.pdf", "0", pages=((0, 8), (10, len(text))))
    marks = highlight.marks_from_evidence([_evidence("records[2].materials[1].formula", "ZnO",
                                                     _spans(text, "ZnO"))])
    out = highlight.render(text, marks, pages=document.pages)
    assert out.index('<span class="mx-page">page 2</span>') < out.index("page two")
    assert marks[0].record == 2 and marks[0].field == "formula"
    assert FieldPath.parse("records[0].hosts[3]").field == "hosts"


# --- review: editors and validation --------------------------------------------------------

EXPECTED_KINDS = {"doping": {"hosts": "lines", "dopants": "lines", "links": "json"},
                  "general": {"materials": "json"}, "mof": {"mofs": "json"}}


@pytest.mark.parametrize("schema", builtin_names())
def test_builtin_records_round_trip_through_the_editors(schema):
    spec = get_schema(schema)
    fields = review.field_specs(spec)
    assert {f.name: f.kind for f in fields} == EXPECTED_KINDS[schema]
    record = spec.examples[0].output
    editors = {f.name: review.to_editor(f, record[f.name]) for f in fields}
    checked = review.check(spec, fields, editors, record)
    assert checked.valid and checked.errors == {}
    assert checked.record == spec.model.model_validate(record).model_dump(mode="json")


def test_errors_are_reported_per_field_and_checks_are_warnings():
    spec = get_schema("doping")
    fields = review.field_specs(spec)
    fallback = {"hosts": ["ZnO"], "dopants": ["Al"], "links": []}
    bad = review.check(spec, fields, {"hosts": "ZnO\n" + "x" * 49, "dopants": "Al",
                                      "links": '[{"host": "ZnO"'}, fallback)
    assert not bad.valid
    assert bad.errors["hosts"] == ["hosts[1]: String should have at most 48 characters"]
    assert bad.errors["links"][0].startswith("not valid JSON")
    warned = review.check(spec, fields, {"hosts": "ZnO", "dopants": "Al",
                                         "links": '[{"host": "TiO2", "dopant": "Al"}]'},
                          fallback)
    assert warned.valid and "not listed in hosts" in warned.problems["links"][0]


def test_user_schema_fields_get_matching_editors(tmp_path):
    path = tmp_path / "alloy.json"
    path.write_text(json.dumps({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "count": {"type": "integer"}, "k": {"type": "number"},
        "magnetic": {"type": "boolean"}, "phase": {"enum": ["fcc", "bcc"]},
        "parts": {"type": "array", "items": {"type": "string"}},
        "origin": {"type": "object", "properties": {"lab": {"type": "string"}}}}}))
    spec = get_schema(str(path))
    fields = {f.name: f for f in review.field_specs(spec)}
    assert {n: f.kind for n, f in fields.items()} == {
        "name": "text", "count": "integer", "k": "number", "magnetic": "bool",
        "phase": "json", "parts": "lines", "origin": "json"}
    assert fields["count"].nullable and not fields["name"].nullable
    assert review.from_editor(fields["count"], "") == (None, None)
    assert review.from_editor(fields["count"], "2.5")[1] == "not a whole number: '2.5'"
    checked = review.check(spec, list(fields.values()), {
        "name": "Inconel", "count": "3", "k": "", "magnetic": True, "phase": '"fcc"',
        "parts": "Ni\nCr\n", "origin": ""}, {})
    assert checked.valid, checked.errors
    assert checked.record == {"name": "Inconel", "count": 3, "k": None, "magnetic": True,
                              "phase": "fcc", "parts": ["Ni", "Cr"], "origin": None}


def test_edited_values_are_grounded_again():
    document = Document.from_text("Er3+ doped NaYF4 nanocrystals")
    evidence = Grounder(document).evidence({"hosts": ["NaYF4", "Y2O3"], "dopants": ["Er3+"]}, 1)
    assert [(str(e.where), e.value, [s.start for s in e.spans]) for e in evidence] == [
        ("records[1].hosts[0]", "NaYF4", [11]), ("records[1].hosts[1]", "Y2O3", []),
        ("records[1].dopants[0]", "Er3+", [0])]


# --- state: results and jobs ---------------------------------------------------------------

def _extraction(text: str, records: list[dict], windows: list[tuple[int, int]]) -> dict:
    trace = [{"window": {"start": s, "end": e}, "best_attempt": 1,
              "attempts": [{"number": 1, "record": r}]} for (s, e), r in zip(windows, records)]
    return {"source": "a.txt", "sha256": "0" * 64, "records": records, "evidence": {},
            "ungrounded": [], "trace": trace,
            "schema": {"name": "doping", "version": "1"}, "model": {"name": "tiny"},
            "timings": {}, "errors": []}


def _result(text: str = "Al doped ZnO. Mn doped TiO2.") -> DocumentResult:
    records = [{"hosts": ["ZnO"], "dopants": ["Al"], "links": []},
               {"hosts": ["TiO2"], "dopants": ["Mn"], "links": []}]
    extraction = _extraction(text, records, [(0, 13), (14, len(text))])
    extraction["evidence"] = {"records[0].hosts[0]": _spans(text, "ZnO"),
                              "records[1].hosts[0]": _spans(text, "TiO2")}
    return DocumentResult.from_extraction("0:x", "a.txt", Document.from_text(text), "doping",
                                          extraction)


def test_replacing_a_record_replaces_only_its_evidence():
    result = _result()
    assert [str(e.where) for e in result.evidence] == [
        "records[0].hosts[0]", "records[0].dopants[0]", "records[1].hosts[0]",
        "records[1].dopants[0]"]
    result.replace_record(0, {"hosts": ["ZnO", "MgO"], "dopants": [], "links": []},
                          [_evidence("records[0].hosts[0]", "ZnO",
                                     _spans(result.document.text, "ZnO")),
                           _evidence("records[0].hosts[1]", "MgO", [])])
    assert result.reviews[0].edited and not result.reviews[1].edited
    assert [(str(e.where), e.grounded) for e in result.evidence] == [
        ("records[0].hosts[0]", True), ("records[0].hosts[1]", False),
        ("records[1].hosts[0]", True), ("records[1].dopants[0]", False)]
    assert [str(e.where) for e in result.original_evidence_of(0)] == [
        "records[0].hosts[0]", "records[0].dopants[0]"]
    assert result.record_windows() == [(0, 13), (14, 28)]
    rows = table_rows([result])
    assert [(r["record"], r["grounded"]) for r in rows] == [(1, "1/2"), (2, "1/2")]


def test_jobs_hand_out_each_document_once_and_cancel_after_the_current_one():
    documents = [(f"d{i}", Document.from_text(f"text {i}")) for i in range(3)]
    job = Job(pending=list(documents), total=3, config={"schema_name": "doping"})
    name, document = job.claim()
    assert name == "d0" and job.claim() is None  # another run must wait for d0
    assert job.cancel() == 2 and job.active == "d0"  # d0 is still being read

    def finish_later() -> None:
        time.sleep(0.3)
        job.finish(name, document, _extraction(document.text, [{"hosts": []}], [(0, 6)]))

    threading.Thread(target=finish_later).start()
    assert job.wait_idle(timeout=10)
    assert not job.running and job.done == 1 and len(job.results) == 1
    assert job.claim() is None


# --- exports and corrections ---------------------------------------------------------------

def test_exports_hold_only_accepted_records():
    result = _result()
    result.reviews[1].status = "accepted"
    result.reviews[0].status = "rejected"
    items = export.accepted_items([result])
    assert [i["record"]["hosts"] for i in items] == [["TiO2"]]
    assert items[0]["evidence"] == {"hosts[0]": _spans(result.document.text, "TiO2")}
    assert items[0]["ungrounded"] == ["dopants[0]"]
    assert json.loads(export.to_json(items)) == [json.loads(export.to_jsonl(items))]
    assert export.to_csv(items).splitlines() == ["source,record_index,edited,hosts,dopants,links",
                                                 "a.txt,1,False,TiO2,Mn,"]


def test_corrections_are_task_lines_that_eval_and_finetune_read(tmp_path):
    from eval.tasks import load_jsonl_task

    result = _result()
    for item in result.reviews:
        item.status = "accepted"
    lines = export.correction_lines([result], "doping")
    assert [line["text"] for line in lines] == ["Al doped ZnO.", "Mn doped TiO2."]
    path = tmp_path / "corrections" / "doping.jsonl"
    assert export.save_corrections(path, lines) == 2
    assert export.save_corrections(path, lines[:1]) == 2  # same id: replaced, not added
    task = load_jsonl_task(path)
    assert [e.gold["hosts"] for e in task.examples] == [["ZnO"], ["TiO2"]]
    with pytest.raises(export.CorrectionsError, match="schema 'doping', not 'mof'"):
        export.save_corrections(path, [{**lines[0], "schema": "mof"}])
    assert len(path.read_text().splitlines()) == 2  # the refused save changed nothing


def test_corrections_with_an_uploaded_schema_copy_it_beside_the_file(tmp_path):
    schema = tmp_path / "upload" / "alloy.json"
    schema.parent.mkdir()
    schema.write_text(json.dumps({"type": "object", "properties": {
        "name": {"type": "string"}}}))
    name, source = export.schema_reference(str(schema))
    line = {"id": "x:0-5", "text": "Inconel", "gold": {"name": "Inconel"}, "schema": name}
    target = tmp_path / "out" / "alloy.jsonl"
    assert export.save_corrections(target, [line], schema_file=source) == 1
    assert (target.parent / "alloy.json").exists()


# --- the launcher --------------------------------------------------------------------------

def test_the_server_listens_on_localhost_with_the_upload_limit():
    command = streamlit_command(port=8765, max_upload_mb=7)
    text = " ".join(command)
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert Path(command[4]).name == "streamlit_app.py" and Path(command[4]).exists()
    for option in ("--server.address localhost", "--server.port 8765",
                   "--server.maxUploadSize 7", "--server.headless true",
                   "--browser.gatherUsageStats false"):
        assert option in text


def test_a_busy_port_is_a_clear_error():
    from app.cli.serve import app_command

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on localhost is in use"):
            app_command(port=port, open_browser=False)


def test_a_correction_the_task_loader_refuses_is_not_saved(tmp_path):
    result = _result()
    result.reviews[0].status = "accepted"
    line = export.correction_lines([result], "doping")[0]
    path = tmp_path / "doping.jsonl"
    bad = {**line, "gold": {"hosts": "ZnO"}}  # a string where the schema wants a list
    with pytest.raises(export.CorrectionsError, match=re.escape(f"{path}:1: gold.hosts")):
        export.save_corrections(path, [bad])
    assert not path.exists() and list(tmp_path.iterdir()) == []
