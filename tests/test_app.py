"""The web UI through Streamlit's AppTest, with a tiny random model picked by folder path.

The page runs in this process, so the extraction, the schema and the exports are real; only
the browser is missing (tests/test_app_browser.py has one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from app.web import limits  # noqa: E402

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
    _editor(at, "links").input("[{\"host\": ").run()
    assert any(e.startswith("not valid JSON") for e in _errors(at))
    assert len(_errors(at)) == 2  # both fields keep their own message

    _editor(at, "hosts").input("ZnO").run()
    _editor(at, "links").input("[]").run()
    assert _errors(at) == []
    assert at.dataframe[0].value["edited"].tolist() == [True]
    source = at.html[-1].value
    assert 'data-path="records[0].hosts[0]"' in source  # the edited value, highlighted
    assert source.count('class="mx-mark mx-focus"') == 2  # "ZnO" occurs twice

    _button(at, "accept:").click().run()
    assert at.dataframe[0].value["status"].tolist() == ["accepted"]
    for button in at.get("download_button"):
        assert not button.disabled, button.label
    exported = json.loads(downloads["matextract-accepted.json"])
    assert len(exported) == 1 and exported[0]["record"]["hosts"] == ["ZnO"]
    assert exported[0]["edited"] and exported[0]["evidence"]["hosts[0]"][0]["text"] == "ZnO"
    assert downloads["matextract-accepted.csv"].decode().splitlines()[1].startswith(
        "pasted text,0,True,ZnO,")
    assert json.loads(downloads["matextract-accepted.jsonl"])["record"]["links"] == []

    at.button(key="save_corrections").click().run()
    assert not _errors(at), _errors(at)
    saved = tmp_path / "corrections" / "doping.jsonl"
    line = json.loads(saved.read_text())
    assert line["text"] == TEXT and line["gold"]["hosts"] == ["ZnO"] and line["schema"] == "doping"


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
        "melting_point_k": {"type": "number"}}}
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
