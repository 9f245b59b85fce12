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
from extraction.confidence.levels import COLOURS
from extraction.errors import ConfigError
from extraction.schemas import builtin_names, get_schema
from extraction.types import Document, Evidence, FieldPath, Span, evidence_map

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


def test_marks_show_their_confidence_band_and_a_low_value_is_not_hidden():
    text = "Al doped ZnO films"
    evidence = [_evidence(key, value, _spans(text, value)) for key, value in (
        ("records[0].hosts[0]", "ZnO films"), ("records[0].links[0].host", "ZnO"),
        ("records[0].dopants[0]", "Al"))]
    marks = highlight.marks_from_evidence(evidence)
    plain = highlight.render(text, marks, focus=0)
    assert "data-band" not in plain and "confidence" not in plain  # none given: as before

    confidence = {"records[0].hosts[0]": 0.95, "records[0].links[0].host": 0.3}
    missing = [_evidence("records[0].hosts[1]", "MgO", [])]
    out = highlight.render(text, marks, focus=0, confidence=confidence,
                           reviewed={"records[0].hosts[0]"}, missing=missing)
    found = {m[2]: (m[0], m[1]) for m in re.findall(
        r'<mark class="([^"]*)"[^>]*data-band="(\w+)" title="([^"]*)">', out)}
    titles = list(found)
    # "ZnO" is covered by the host (0.95) and the link (0.3): the low one gives the band
    assert found[titles[1]] == ("mx-mark mx-focus mx-low", "low")
    assert "links[0].host = &#x27;ZnO&#x27; (exact, page 1, low confidence 0.30)" \
        in titles[1]
    assert "hosts[0] = &#x27;ZnO films&#x27; (exact, page 1, high confidence 0.95, " \
           "reviewed)" in titles[1]
    assert found[titles[2]][1] == "high"  # " films": the host alone
    assert "no confidence recorded" in titles[0] and found[titles[0]][1] == "unknown"
    assert 'class="mx-miss mx-unknown"' in out and "not found in the source, no " in out
    by_band = highlight.render(text, marks, confidence=confidence, by_confidence=True)
    assert f'background: {COLOURS["low"]}; color: #1f1f1f' in by_band
    assert f'mx-low {{ border-bottom: 3px solid {COLOURS["low"]}' in highlight.STYLE
    chip = highlight.value_chip("<b>ZnO</b>", 0.42)
    assert 'data-band="low"' in chip and "&lt;b&gt;ZnO" in chip and "0.42 (low)" in chip
    assert all(band in highlight.band_legend() for band in ("high ≥ 0.80", "low &lt; 0.50"))


# --- review: editors and validation --------------------------------------------------------

EXPECTED_KINDS = {"doping": {"hosts": "lines", "dopants": "lines", "links": "table"},
                  "general": {"materials": "table"}, "mof": {"mofs": "table"}}


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


def test_lists_of_entries_are_edited_as_table_rows():
    import pandas as pd

    spec = get_schema("mof")
    mofs = {f.name: f for f in review.field_specs(spec)}["mofs"]
    assert mofs.columns[:2] == (("name_of_mof", "text"), ("mof_formula", "text"))
    record = {"mofs": [{"name_of_mof": "ZIF-8", "mof_formula": "", "mof_description": [],
                        "guest_species": ["CO2", "CH4"], "applications": ["gas storage"]}]}
    table = review.to_editor(mofs, record["mofs"])
    assert list(table.columns) == [name for name, _ in mofs.columns]
    assert table.loc[0, "guest_species"] == "CO2; CH4"
    # the user adds a row (list cells separated by ';') and leaves the editor's blank row
    edited = pd.concat([table, pd.DataFrame([
        {"name_of_mof": " MOF-5 ", "mof_formula": "Zn4O(BDC)3", "mof_description": "",
         "guest_species": "H2 ;", "applications": "hydrogen storage; catalysis"},
        {name: None for name, _ in mofs.columns}])], ignore_index=True)
    checked = review.check(spec, [mofs], {"mofs": edited}, record)
    assert checked.valid, checked.errors
    assert checked.record["mofs"] == [record["mofs"][0], {
        "name_of_mof": "MOF-5", "mof_formula": "Zn4O(BDC)3", "mof_description": [],
        "guest_species": ["H2"], "applications": ["hydrogen storage", "catalysis"]}]
    empty = review.to_editor(mofs, [])
    assert empty.empty and list(empty.columns) == list(table.columns)


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


# --- review: values by confidence ----------------------------------------------------------

PAPER = "Al doped ZnO films. Mn doped TiO2 powders."


def _scored(text: str, records: list[dict], confidence: dict[str, float], *,
            reviewed: tuple[str, ...] = (), key: str = "0:x") -> DocumentResult:
    """A document's results as the pipeline writes them: evidence from the grounder, the
    given confidences (None for the rest) and the paths a person reviewed before."""
    document = Document.from_text(text)
    grounder = Grounder(document)
    extraction = _extraction(text, records, [(0, len(text))] * len(records))
    extraction["evidence"] = evidence_map(item for position, record in enumerate(records)
                                          for item in grounder.evidence(record, position))
    extraction["confidence"] = dict(confidence)
    extraction["reviewed"] = list(reviewed)
    return DocumentResult.from_extraction(key, f"{key}.txt", document, "doping", extraction)


def _doped(**confidence: float) -> DocumentResult:
    records = [{"hosts": ["ZnO", "MgO"], "dopants": ["Al"],
                "links": [{"host": "ZnO", "dopant": "Al"}]},
               {"hosts": ["TiO2"], "dopants": ["Mn"], "links": []}]
    keys = {"zno": "records[0].hosts[0]", "mgo": "records[0].hosts[1]",
            "al": "records[0].dopants[0]", "link": "records[0].links[0].host",
            "tio2": "records[1].hosts[0]"}
    return _scored(PAPER, records, {keys[k]: v for k, v in confidence.items()},
                   reviewed=("records[0].hosts[0]",))


def _state(result: DocumentResult) -> list[tuple[str, str, float | None, bool, bool]]:
    """(path, value, confidence, grounded, reviewed) of every value of the results."""
    return [(str(e.where), e.value, e.confidence, e.grounded, str(e.where) in result.reviewed)
            for e in result.evidence]


def test_the_queue_lists_unreviewed_values_lowest_confidence_first():
    first = _doped(zno=0.1, mgo=0.2, al=0.2, link=0.7, tio2=0.05)
    first.reviews[1].status = "rejected"  # its values need no review
    second = _scored("Er3+ doped NaYF4.", [{"hosts": ["NaYF4"], "dopants": ["Er3+"],
                                            "links": []}],
                     {"records[0].hosts[0]": 0.2}, key="1:y")
    queue = review.review_queue([first, second])
    assert [(q.document, str(q.evidence.where), q.evidence.value, q.evidence.confidence)
            for q in queue] == [
        ("0:x.txt", "records[0].hosts[1]", "MgO", 0.2),  # a tie: not in the source first
        ("0:x.txt", "records[0].dopants[0]", "Al", 0.2),
        ("1:y.txt", "records[0].hosts[0]", "NaYF4", 0.2),
        ("0:x.txt", "records[0].links[0].host", "ZnO", 0.7),
        ("0:x.txt", "records[0].links[0].dopant", "Al", None),  # no confidence: last
        ("1:y.txt", "records[0].dopants[0]", "Er3+", None)]
    # reviewed in the output read back: confidence 1 (its recorded 0.1 is stale) and no queue
    assert _state(first)[0] == ("records[0].hosts[0]", "ZnO", 1.0, True, True)
    rows = table_rows([first, second])
    assert [(r["lowest confidence"], r["reviewed"]) for r in rows] == [
        (0.2, "1/5"), (0.05, "0/2"), (0.2, "0/2")]


def test_accepting_or_correcting_a_value_reviews_it_and_keeps_the_others():
    result = _doped(mgo=0.2, al=0.4, link=0.7)
    spec = get_schema("doping")
    mgo = FieldPath(0, "hosts[1]")

    refused = review.correct_value(result, mgo, "x" * 60, spec)
    assert refused.errors == {"hosts": ["hosts[1]: String should have at most 48 characters"]}
    assert result.reviews[0].current["hosts"] == ["ZnO", "MgO"]
    assert result.reviewed == {"records[0].hosts[0]"}

    assert review.correct_value(result, mgo, " TiO2 ", spec).valid
    assert result.reviews[0].current["hosts"] == ["ZnO", "TiO2"] and result.reviews[0].edited
    tio2 = next(e for e in result.evidence if str(e.where) == "records[0].hosts[1]")
    assert [s.start for s in tio2.spans] == [PAPER.index("TiO2")]  # found in the source now
    assert _state(result)[:5] == [
        ("records[0].hosts[0]", "ZnO", 1.0, True, True),
        ("records[0].hosts[1]", "TiO2", 1.0, True, True),  # corrected: reviewed
        ("records[0].dopants[0]", "Al", 0.4, True, False),  # left alone: as it was
        ("records[0].links[0].host", "ZnO", 0.7, True, False),
        ("records[0].links[0].dopant", "Al", None, True, False)]

    # Nothing removes an item of a list; the values after it move up with their review.
    removed = review.correct_value(result, FieldPath(0, "hosts[0]"), "", spec)
    assert removed.valid and "'ZnO' is not listed in hosts" in removed.problems["links"][0]
    assert result.reviews[0].current["hosts"] == ["TiO2"]
    assert _state(result)[:2] == [("records[0].hosts[0]", "TiO2", 1.0, True, True),
                                  ("records[0].dopants[0]", "Al", 0.4, True, False)]

    assert review.accept_value(result, FieldPath(0, "dopants[0]"))
    assert not review.accept_value(result, FieldPath(0, "hosts[3]"))  # no such value
    assert _state(result)[1] == ("records[0].dopants[0]", "Al", 1.0, True, True)
    assert [str(q.evidence.where) for q in review.review_queue([result])] == [
        "records[0].links[0].host", "records[0].links[0].dopant", "records[1].hosts[0]",
        "records[1].dopants[0]"]
    with pytest.raises(KeyError, match="no text value at 'links'"):
        review.replace_value(result.reviews[0].current, "links", "x")

    review.reset_record(result, 0)
    assert result.reviews[0].current == result.reviews[0].original
    assert result.reviewed == {"records[0].hosts[0]"}  # as the output said
    assert [e.confidence for e in result.evidence_of(0)] == [1.0, 0.2, 0.4, 0.7, None]


def test_a_table_edit_keeps_the_confidence_of_the_rows_it_left_alone():
    records = [{"hosts": ["ZnO", "TiO2"], "dopants": ["Al", "Mn"],
                "links": [{"host": "ZnO", "dopant": "Al"}, {"host": "TiO2", "dopant": "Mn"}]}]
    result = _scored(PAPER, records, {"records[0].links[0].host": 0.3,
                                      "records[0].links[1].host": 0.6},
                     reviewed=("records[0].links[1].dopant",))
    spec = get_schema("doping")
    fields = review.field_specs(spec)
    links = next(f for f in fields if f.name == "links")
    editors = {f.name: review.to_editor(f, records[0][f.name]) for f in fields}
    # the user deletes the first row of the links table
    editors["links"] = editors["links"].drop(index=0).reset_index(drop=True)
    checked = review.check(spec, fields, editors, records[0])
    assert checked.valid, checked.errors
    review.edit_record(result, 0, checked.record)
    assert _state(result)[4:] == [("records[0].links[0].host", "TiO2", 0.6, True, False),
                                  ("records[0].links[0].dopant", "Mn", 1.0, True, True)]
    # then types a new host into the remaining row: a person's value
    editors["links"] = review.to_editor(links, checked.record["links"])
    editors["links"].loc[0, "host"] = "ZnO"
    checked = review.check(spec, fields, editors, checked.record)
    review.edit_record(result, 0, checked.record)
    assert _state(result)[4:] == [("records[0].links[0].host", "ZnO", 1.0, True, True),
                                  ("records[0].links[0].dopant", "Mn", 1.0, True, True)]


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
    assert export.to_csv(items).splitlines() == [
        "source,record_index,edited,reviewed,hosts,dopants,links", "a.txt,1,False,,TiO2,Mn,"]


def test_exports_carry_the_confidence_and_review_of_each_value():
    result = _doped(mgo=0.2, al=0.4)
    assert review.correct_value(result, FieldPath(0, "hosts[1]"), "TiO2",
                                get_schema("doping")).valid
    result.reviews[0].status = "accepted"
    [item] = export.accepted_items([result])
    assert item["reviewed"] == ["hosts[0]", "hosts[1]"]
    assert item["confidence"] == {"hosts[0]": 1.0, "hosts[1]": 1.0, "dopants[0]": 0.4}
    assert json.loads(export.to_jsonl([item]))["reviewed"] == ["hosts[0]", "hosts[1]"]
    assert export.to_csv([item]).splitlines()[1].startswith(
        "0:x.txt,0,True,hosts[0]; hosts[1],ZnO; TiO2,Al,")


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
