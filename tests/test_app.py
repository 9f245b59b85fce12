"""The web UI through Streamlit's AppTest, with a tiny random model picked by folder path.

The page runs in this process, so the extraction, the schema and the exports are real; only
the browser is missing (tests/test_app_browser.py has one). AppTest cannot type into a table
(st.data_editor) cell; a table is edited as the browser reports edits to the script: its
edit state (edited, added and deleted rows) under the table's key, then a rerun.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("streamlit")
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from app.web import limits  # noqa: E402
from app.web.state import DocumentResult, Job  # noqa: E402
from extraction.checking.grounding import Grounder  # noqa: E402
from extraction.types import Document, evidence_map  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "app" / "web" / "streamlit_app.py"
TEXT = "Mn-doped ZnO films were grown by sputtering. Al doped ZnO was compared."
TIMEOUT = 120  # the first run imports torch and transformers


@pytest.fixture
def page(tiny_model_dirs, tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv(limits.ENV_MODEL, str(tiny_model_dirs["llama"]))
    monkeypatch.setenv(limits.ENV_EVAL_DIR, str(tmp_path / "no-eval-results"))
    monkeypatch.setenv(limits.ENV_CORRECTIONS, str(tmp_path / "corrections"))
    monkeypatch.setenv("MATEXTRACT_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    at.number_input(key="attempts").set_value(1)  # one answer per document: fast
    return at


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """The bytes behind every st.download_button, by file name."""
    captured: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        if filename and isinstance(path_or_data, (bytes, str)):
            data = path_or_data.encode() if isinstance(path_or_data, str) else path_or_data
            captured[filename] = data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    return captured


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _editor(at: AppTest, field: str):
    return next(w for w in at.text_area if w.key and w.key.endswith(f":{field}"))


def _button(at: AppTest, prefix: str):
    return next(b for b in at.button if b.key and b.key.startswith(prefix))


def _table(at: AppTest, field: str):
    return next(t for t in at.data_editor if t.key and t.key.endswith(f":{field}"))


def _edit_table(at: AppTest, field: str, *, added: list[dict[str, Any]] = (),
                edited: dict[int, dict[str, Any]] | None = None, deleted: list[int] = (),
                delete_all: bool = False):
    """Edit a table as the browser does: its edit state under its key, then a rerun."""
    table = _table(at, field)
    if delete_all:
        deleted = list(range(len(table.value)))
    at.session_state[table.key] = {"edited_rows": edited or {}, "added_rows": list(added),
                                   "deleted_rows": list(deleted)}
    return at.run()


def _source(at: AppTest) -> str:
    return next(h.value for h in at.html if 'data-testid="mx-document"' in h.value)


def test_paste_extract_edit_fix_accept_export(page, downloads, tmp_path):
    at = page
    at.radio(key="input_source").set_value("Paste text").run()
    at.text_area(key="paste_text").input(TEXT)
    at.button(key="extract").click().run()
    assert not at.exception and not _errors(at), (at.exception, _errors(at))

    table = at.dataframe[0].value
    assert list(table["document"]) == ["pasted text"] and list(table["status"]) == ["pending"]
    assert at.html, "the source text is shown"
    assert "ZnO" in at.html[-1].value

    _editor(at, "hosts").input("Z" * 60).run()  # the schema allows 48 characters
    assert any("hosts[0]" in e and "at most 48 characters" in e for e in _errors(at))
    assert _button(at, "accept:").disabled
    assert _table(at, "links").editing_mode == "dynamic"  # rows can be added and deleted
    _edit_table(at, "links", delete_all=True, added=[{"host": "Z" * 49, "dopant": "Mn"}])
    assert any(e == "links[0].host: String should have at most 48 characters"
               for e in _errors(at)), _errors(at)
    assert len(_errors(at)) == 2  # both fields keep their own message

    _editor(at, "hosts").input("ZnO").run()
    _editor(at, "dopants").input("Mn\nAl").run()
    assert _errors(at) == ["links[0].host: String should have at most 48 characters"]
    _edit_table(at, "links", delete_all=True, added=[{"host": "ZnO", "dopant": "Mn"},
                                                     {"host": "ZnO", "dopant": "Al"}])
    assert _errors(at) == [] and not at.warning, [w.value for w in at.warning]
    record = at.session_state["job"].results[0].reviews[0].current
    assert record == {"hosts": ["ZnO"], "dopants": ["Mn", "Al"],
                      "links": [{"host": "ZnO", "dopant": "Mn"}, {"host": "ZnO", "dopant": "Al"}]}
    # the table starts again from the stored record: a fresh key, the rows as its input
    assert _table(at, "links").value.to_dict("records") == record["links"]
    _edit_table(at, "links", edited={0: {"dopant": "Al"}}, deleted=[1])  # typed over, deleted
    assert not _errors(at) and not at.warning
    assert at.session_state["job"].results[0].reviews[0].current["links"] == [
        {"host": "ZnO", "dopant": "Al"}]
    assert at.dataframe[0].value["edited"].tolist() == [True]
    source = _source(at)
    assert 'data-path="records[0].hosts[0]"' in source  # the edited value, highlighted
    assert source.count('class="mx-mark mx-focus') == 4  # "ZnO" twice, "Mn" and "Al"

    _button(at, "accept:").click().run()
    assert at.dataframe[0].value["status"].tolist() == ["accepted"]
    for button in at.get("download_button"):
        assert not button.disabled, button.label
    exported = json.loads(downloads["matextract-accepted.json"])
    assert len(exported) == 1 and exported[0]["record"]["hosts"] == ["ZnO"]
    assert exported[0]["edited"] and exported[0]["evidence"]["hosts[0]"][0]["text"] == "ZnO"
    # values a person typed are reviewed: confidence 1
    assert "hosts[0]" in exported[0]["reviewed"] and exported[0]["confidence"]["hosts[0]"] == 1
    assert downloads["matextract-accepted.csv"].decode().splitlines()[1].startswith(
        "pasted text,0,True,hosts[0]; ")
    assert json.loads(downloads["matextract-accepted.jsonl"])["record"]["links"] == [
        {"host": "ZnO", "dopant": "Al"}]

    at.button(key="save_corrections").click().run()
    assert not _errors(at), _errors(at)
    saved = tmp_path / "corrections" / "doping.jsonl"
    line = json.loads(saved.read_text())
    assert line["text"] == TEXT and line["gold"]["hosts"] == ["ZnO"] and line["schema"] == "doping"


# Two documents as the pipeline reports them, with a confidence for most values (the
# tiny random model writes no values worth scoring).
PAPERS = {
    "first.txt": ("Al doped ZnO films. Mn doped TiO2 powders.", [
        {"hosts": ["ZnO", "MgO"], "dopants": ["Al"], "links": [{"host": "ZnO", "dopant": "Al"}]},
        {"hosts": ["TiO2"], "dopants": ["Mn"], "links": []}], {
        "records[0].hosts[0]": 0.9, "records[0].hosts[1]": 0.15, "records[0].dopants[0]": 0.35,
        "records[0].links[0].host": 0.85, "records[0].links[0].dopant": 0.6,
        "records[1].hosts[0]": 0.55}),
    "second.txt": ("Er3+ doped NaYF4 nanocrystals.", [
        {"hosts": ["NaYF4"], "dopants": ["Er3+"], "links": []}], {
        "records[0].hosts[0]": 0.25, "records[0].dopants[0]": 0.95})}


def _finished_job() -> Job:
    results = []
    for number, (name, (text, records, confidence)) in enumerate(PAPERS.items()):
        document = Document.from_text(text, source=name)
        grounder = Grounder(document)
        extraction = {"source": name, "sha256": document.sha256, "records": records,
                      "evidence": evidence_map(item for position, record in enumerate(records)
                                               for item in grounder.evidence(record, position)),
                      "confidence": confidence, "reviewed": [], "trace": [], "errors": [],
                      "schema": {"name": "doping", "version": "1"}, "model": {"name": "given"},
                      "timings": {}}
        results.append(DocumentResult.from_extraction(f"{number}:{document.sha256[:8]}", name,
                                                      document, "doping", extraction))
    return Job(pending=[], total=len(results), config={"schema_name": "doping"},
               results=results, done=len(results))


def _bands(source: str) -> dict[str, str]:
    """data-path -> confidence band of every mark in the highlighted source."""
    return dict(re.findall(r'<mark [^>]*data-path="([^"]+)"[^>]*data-band="(\w+)"', source))


def test_values_are_reviewed_lowest_confidence_first(page, downloads):
    at = page
    at.session_state["job"] = job = _finished_job()
    at.run()
    assert not at.exception, at.exception
    first, second = job.results
    queue = at.dataframe(key="queue_table").value
    assert list(zip(queue["value"], queue["document"], queue["field"])) == [
        ("MgO", "first.txt", "records[0].hosts[1]"),
        ("NaYF4", "second.txt", "records[0].hosts[0]"),
        ("Al", "first.txt", "records[0].dopants[0]"),
        ("TiO2", "first.txt", "records[1].hosts[0]"),
        ("Al", "first.txt", "records[0].links[0].dopant"),
        ("ZnO", "first.txt", "records[0].links[0].host"),
        ("ZnO", "first.txt", "records[0].hosts[0]"),
        ("Er3+", "second.txt", "records[0].dopants[0]"),
        ("Mn", "first.txt", "records[1].dopants[0]")]  # no confidence: last
    assert queue["in the source"].tolist()[:2] == [False, True]
    assert at.selectbox(key="queue_choice").value == f"{first.key}|records[0].hosts[1]"

    # The source marks each value's band; "Al" is a dopant (0.35) and a link's (0.6): low.
    source = _source(at)
    assert _bands(source) == {"records[0].dopants[0]": "low", "records[0].hosts[0]": "high",
                              "records[1].hosts[0]": "medium", "records[1].dopants[0]": "unknown"}
    assert 'class="mx-miss mx-low"' in source and "low confidence 0.15" in source
    at.radio(key="mark_colours").set_value("confidence").run()
    assert "background: #f4a6a6; color: #1f1f1f" in _source(at)

    # A correction is checked against the schema; a refused one changes nothing.
    fix = at.text_input(key=f"fix:{first.key}|records[0].hosts[1]")
    assert fix.value == "MgO"
    fix.input("x" * 49).run()
    at.button(key="correct_value").click().run()
    assert _errors(at) == ["Not saved: hosts[1]: String should have at most 48 characters"]
    assert at.dataframe(key="queue_table").value["value"].tolist()[0] == "MgO"
    at.text_input(key=f"fix:{first.key}|records[0].hosts[1]").input("TiO2").run()
    at.button(key="correct_value").click().run()
    assert not _errors(at) and not at.exception
    assert first.reviews[0].current["hosts"] == ["ZnO", "TiO2"]
    assert _editor(at, "hosts").value == "ZnO\nTiO2"  # the record's editor shows it too
    source = _source(at)
    assert _bands(source)["records[0].hosts[1]"] == "high"  # found now, confidence 1
    assert "records[0].hosts[1] = &#x27;TiO2&#x27; (exact, page 1, high confidence 1.00, " \
           "reviewed)" in source
    queue = at.dataframe(key="queue_table").value
    assert queue["value"].tolist()[:2] == ["NaYF4", "Al"] and len(queue) == 8

    # The next value is in another document: show it, then accept it as it is.
    at.button(key="show_value").click().run()
    assert at.selectbox(key="record_choice").value == 2  # second.txt, record 1
    assert any(m.value == "**Source: second.txt**" for m in at.markdown)
    at.button(key="accept_value").click().run()
    assert at.dataframe(key="queue_table").value["value"].tolist()[0] == "Al"
    assert second.evidence[0].confidence == 1.0
    rows = at.dataframe[0].value
    assert rows["reviewed"].tolist() == ["1/5", "0/2", "1/2"]
    assert rows["status"].tolist() == ["pending"] * 3  # a record is accepted on its own

    at.selectbox(key="record_choice").set_value(0).run()
    _button(at, "accept:").click().run()
    [exported] = json.loads(downloads["matextract-accepted.json"])
    assert exported["source"] == "first.txt" and exported["reviewed"] == ["hosts[1]"]
    assert exported["confidence"] == {"hosts[0]": 0.9, "hosts[1]": 1.0, "dopants[0]": 0.35,
                                      "links[0].host": 0.85, "links[0].dopant": 0.6}


def test_bad_uploads_are_reported_and_the_session_goes_on(page, monkeypatch):
    at = page
    monkeypatch.setenv(limits.ENV_MAX_UPLOAD_MB, "1")
    at.run()  # the upload box now has the 1 MB limit
    uploader = at.file_uploader[0]
    assert set(uploader.allowed_type) == {".txt", ".md", ".html", ".htm", ".pdf", ".json",
                                          ".jsonl"}
    uploader.set_value([("broken.pdf", b"%PDF-1.7 not really a pdf", "application/pdf"),
                        ("empty.txt", b"", "text/plain"),
                        ("binary.txt", b"\x00\x01\x02" * 100, "text/plain"),
                        ("items.jsonl", b'{"title": "x"}\n', "application/jsonl"),
                        ("huge.txt", b"a" * (1024 * 1024 + 10), "text/plain"),
                        ("good.md", TEXT.encode(), "text/markdown")]).run()
    at.button(key="extract").click().run()
    assert not at.exception, at.exception
    errors = "\n".join(_errors(at))
    for expected in ("broken.pdf: corrupt or truncated PDF", "empty.txt: file is empty",
                     "binary.txt: looks like a binary file", "items.jsonl: item 0 has no text",
                     "huge.txt: 1.0 MB is over the 1 MB limit"):
        assert expected in errors
    assert "/tmp" not in errors  # messages name the upload, not where it was stored
    assert at.dataframe[0].value["document"].tolist() == ["good.md"]

    # A type the browser refuses, sent anyway: Streamlit rejects it for one run; the
    # session and its results survive.
    at.file_uploader[0].set_value(("tool.exe", b"MZ\x90\x00", "application/octet-stream"))
    at.run()
    assert "Invalid file extension" in at.exception[0].message
    at.run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["document"].tolist() == ["good.md"]


def test_a_model_folder_that_cannot_load_gives_a_message(page, tmp_path):
    at = page
    at.text_input(key="model_folder").input(str(tmp_path / "no-such-model"))
    at.radio(key="input_source").set_value("Paste text").run()
    at.text_area(key="paste_text").input(TEXT)
    at.button(key="extract").click().run()
    assert not at.exception, at.exception
    assert any("The model cannot be used" in e and "no-such-model" in e for e in _errors(at))


def test_an_uploaded_json_schema_drives_extraction_and_editing(page):
    at = page
    at.selectbox(key="schema_choice").set_value("Upload a JSON Schema…").run()
    at.file_uploader(key="schema_upload").set_value(
        ("alloy.json", b"{\"type\": \"object\"}", "application/json")).run()
    assert any("root must be an object schema" in e for e in _errors(at))
    schema = {"type": "object", "title": "alloy", "properties": {
        "alloy": {"type": "string", "maxLength": 20, "description": "alloy name"},
        "elements": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "melting_point_k": {"type": "number"},
        "samples": {"type": "array", "maxItems": 3, "items": {  # flat objects: a table
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "thickness_nm": {"type": "number"}}}},
        "origin": {"type": "object", "properties": {  # anything else nested: JSON text
            "lab": {"type": "string"}, "years": {"type": "array", "items": {
                "type": "integer"}}}}}}
    at.file_uploader(key="schema_upload").set_value(
        ("alloy.json", json.dumps(schema).encode(), "application/json")).run()
    assert not _errors(at)
    at.radio(key="input_source").set_value("Paste text").run()
    at.text_area(key="paste_text").input("The Ti-6Al-4V alloy melts at 1933 K.")
    at.button(key="extract").click().run()
    assert not at.exception and not _errors(at), (at.exception, _errors(at))
    number = next(w for w in at.text_input if w.key and w.key.endswith(":melting_point_k"))
    number.input("hot").run()
    assert any("not a number: 'hot'" in e for e in _errors(at))
    number = next(w for w in at.text_input if w.key and w.key.endswith(":melting_point_k"))
    number.input("1933").run()
    assert not _errors(at)
    assert at.session_state["job"].results[0].reviews[0].current["melting_point_k"] == 1933.0

    _edit_table(at, "samples", delete_all=True, added=[{"name": "S1", "thickness_nm": "thick"}])
    assert "row 1, thickness_nm: not a number: 'thick'" in _errors(at)
    _edit_table(at, "samples", delete_all=True, added=[{"name": "S1", "thickness_nm": "20"},
                                                       {"name": "S2"}])
    _editor(at, "origin").input('{"lab": "ETH", "years": [2020, "soon"]}').run()
    assert any(e.startswith("origin.years[1]: Input should be a valid integer")
               for e in _errors(at)), _errors(at)
    _editor(at, "origin").input('{"lab": "ETH", "years": [2020]}').run()
    assert not _errors(at)
    record = at.session_state["job"].results[0].reviews[0].current
    assert record["samples"] == [{"name": "S1", "thickness_nm": 20.0},
                                 {"name": "S2", "thickness_nm": None}]
    assert record["origin"] == {"lab": "ETH", "years": [2020]}
