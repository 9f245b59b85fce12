"""extraction.documents on real files written to tmp_path (and the NERRE data when present)."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from fpdf import FPDF

from extraction.documents.loading import SUPPORTED_SUFFIXES, load, load_text
from extraction.errors import DocumentError, UnsupportedFormatError
from extraction.types import sha256_text

NERRE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerre"


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def make_pdf(path: Path, pages: list[str]) -> Path:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- plain text -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["paper.txt", "paper.md", "PAPER.TXT"])
def test_plain_text_loads_as_one_document(tmp_path: Path, name: str) -> None:
    text = "# ZnO films\n\nDoped with 2 at.% Al; Er³⁺ emits at 1.5 µm.\n"
    path = write(tmp_path / name, text)
    [doc] = load(path)
    assert doc.text == text
    assert doc.source == str(path)
    assert doc.sha256 == sha256_file(path)
    assert doc.pages == ((0, len(doc.text)),)
    assert doc.metadata == {"format": path.suffix.lower().lstrip("."), "encoding": "utf-8"}


def test_plain_text_normalises_line_endings_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", b"\xef\xbb\xbfline one\r\nline two\rthree")
    [doc] = load(str(path))
    assert doc.text == "line one\nline two\nthree"
    assert doc.sha256 == sha256_file(path)  # hash of the raw bytes, not of the cleaned text
    assert doc.metadata["encoding"] == "utf-8"


WESTERN = "TiO2 annealed at 300 °C; grains of 2 µm; a = 3.905 Å (Müller)."


@pytest.mark.parametrize(("text", "encoding"), [
    (WESTERN, "latin-1"),
    ("TiO2 annealed at 500 °C for two hours in air.", "latin-1"),  # one byte, \xb0
    (WESTERN + " The “doped” films – 5 € each – keep ‘quotes’ and dashes…", "cp1252"),
    (WESTERN, "utf-16"),  # with its BOM
    ("Er³⁺ emits at 1.5 µm, Fe₂O₃ at 300 °C.", "utf-8"),
], ids=["latin-1", "latin-1-one-byte", "cp1252", "utf-16", "utf-8"])
def test_plain_text_encodings(tmp_path: Path, text: str, encoding: str) -> None:
    # Before: a Latin-1 file lost its degree sign to U+FFFD ("500 \ufffdC").
    path = write(tmp_path / "paper.txt", text.encode(encoding))
    [doc] = load(path)
    assert doc.text == text
    assert doc.metadata == {"format": "txt", "encoding": encoding}


def test_cjk_text_goes_to_charset_normalizer(tmp_path: Path) -> None:
    text = "二氧化钛薄膜在500摄氏度退火两小时，晶粒尺寸为两微米。" * 3
    [doc] = load(write(tmp_path / "gbk.txt", text.encode("gbk")))
    assert doc.text == text
    assert doc.metadata["encoding"] in ("gb18030", "gbk", "gb2312")


def test_utf8_with_a_few_stray_bytes_is_kept_and_counted(tmp_path: Path) -> None:
    data = "Er³⁺ emits at 1.5 µm at 300 °C.".encode() + b" A damaged \xff\xfe export."
    [doc] = load(write(tmp_path / "damaged.txt", data))
    assert doc.text == "Er³⁺ emits at 1.5 µm at 300 °C. A damaged \ufffd\ufffd export."
    assert doc.metadata == {"format": "txt", "encoding": "utf-8", "replaced": 2}


def random_junk() -> bytes:
    return random.Random(0).randbytes(4096) + b"\x00\x00"


@pytest.mark.parametrize("suffix", [".txt", ".md", ".html", ".json", ".jsonl"])
@pytest.mark.parametrize("data", [random_junk(), bytes(range(1, 32)) * 40],
                         ids=["random-with-nul", "control-chars"])
def test_binary_junk_is_rejected(tmp_path: Path, suffix: str, data: bytes) -> None:
    path = write(tmp_path / f"junk{suffix}", data)
    with pytest.raises(DocumentError, match="binary file") as info:
        load(path)
    assert info.value.path == str(path)
    assert info.value.hint


# --- errors common to all formats -----------------------------------------------------------------

@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
@pytest.mark.parametrize(("data", "problem"), [(b"", "file is empty"),
                                               (b" \n\t\r\n", "only whitespace")])
def test_empty_file(tmp_path: Path, suffix: str, data: bytes, problem: str) -> None:
    path = write(tmp_path / f"empty{suffix}", data)
    with pytest.raises(DocumentError, match=problem) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "hint:" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="file not found") as info:
        load(tmp_path / "nope.pdf")
    assert info.value.path == str(tmp_path / "nope.pdf")
    assert "check the path" in info.value.hint


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "papers.pdf"
    folder.mkdir()
    with pytest.raises(DocumentError, match="is a directory"):
        load(folder)


@pytest.mark.parametrize(("name", "shown"), [("paper.docx", "'.docx'"),
                                             ("README", "(no extension)")])
def test_unknown_extension(tmp_path: Path, name: str, shown: str) -> None:
    path = write(tmp_path / name, "some text")
    with pytest.raises(UnsupportedFormatError, match="unsupported file type") as info:
        load(path)
    assert shown in info.value.message
    assert all(suffix in info.value.hint for suffix in SUPPORTED_SUFFIXES)


def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "locked.txt", "text")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading")
        with pytest.raises(DocumentError, match="permission denied") as info:
            load(path)
        assert "chmod" in info.value.hint
    finally:
        path.chmod(0o644)


# --- HTML -------------------------------------------------------------------------------

ARTICLE = """<!DOCTYPE html>
<html><head><title>Hematite films</title><style>p { color: red }</style>
<script>var x = "not text";</script></head>
<body><nav><a href="/">Home</a> | <a href="/journals">Journals</a></nav>
<h1>Hematite   films</h1>
<p>Films of Fe<sub>2</sub>O<sub>3</sub> doped with Er<sup>3+</sup> were grown
   at 500&nbsp;K.<!-- editor note --></p>
<p>TiO<sub>2</sub><sup><a href="#b12">12</a></sup> is a reference.<br>Second line.</p>
<table><tr><th>Sample</th><th>Gap (eV)</th></tr><tr><td>S1</td><td>2.1</td></tr></table>
</body></html>"""


@pytest.mark.parametrize("suffix", [".html", ".htm"])
def test_html_text_keeps_formulas_and_blocks(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"article{suffix}", ARTICLE)
    [doc] = load(path)
    assert doc.text == (
        "Hematite films\n\n"
        "Films of Fe2O3 doped with Er3+ were grown at 500\u00a0K.\n\n"
        "TiO2 is a reference.\nSecond line.\n\n"
        "Sample\tGap (eV)\nS1\t2.1"
    )
    assert doc.metadata == {"format": "html", "title": "Hematite films"}
    assert doc.sha256 == sha256_file(path)
    assert doc.pages == ((0, len(doc.text)),)


def test_html_honours_declared_charset(tmp_path: Path) -> None:
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>500 °C</p></body></html>'
    path = write(tmp_path / "old.html", html.encode("iso-8859-1"))
    assert load(path)[0].text == "500 °C"


def test_html_without_visible_text(tmp_path: Path) -> None:
    html = "<html><head><script>go()</script></head><body> </body></html>"
    path = write(tmp_path / "redirect.html", html)
    with pytest.raises(DocumentError, match="no visible text"):
        load(path)


# --- PDF --------------------------------------------------------------------------------

def test_pdf_pages_are_character_ranges(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "two.pdf", ["First page about ZnO.", "Second page: 0.5 wt% Al."])
    [doc] = load(path)
    assert doc.text == "First page about ZnO.\n\nSecond page: 0.5 wt% Al."
    assert len(doc.pages) == 2
    (s1, e1), (s2, e2) = doc.pages
    assert doc.text[s1:e1] == "First page about ZnO."
    assert doc.text[s2:e2] == "Second page: 0.5 wt% Al."
    assert doc.page_of(doc.text.index("ZnO")) == 1
    assert doc.page_of(doc.text.index("Al.")) == 2
    assert doc.sha256 == sha256_file(path)
    assert doc.metadata == {"format": "pdf", "page_count": 2}


def test_pdf_blank_page_gets_an_empty_range(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "gap.pdf", ["one", "", "three"])
    [doc] = load(path)
    assert doc.text == "one\n\n\n\nthree"
    assert [doc.text[s:e] for s, e in doc.pages] == ["one", "", "three"]
    assert doc.page_of(doc.text.index("three")) == 3


def test_pdf_keeps_subscripts_and_superscripts_inline(tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    for text, vpos in [("Fe", "LINE"), ("2", "SUB"), ("O", "LINE"), ("3", "SUB"),
                       (" doped with Er", "LINE"), ("3+", "SUP"), (" ions.", "LINE")]:
        pdf.char_vpos = vpos
        pdf.write(6, text)
    pdf.output(str(tmp_path / "formula.pdf"))
    [doc] = load(tmp_path / "formula.pdf")
    assert doc.text == "Fe2O3 doped with Er3+ ions."


def test_pdf_joins_lines_at_real_hyphens_keeping_them(tmp_path: Path) -> None:
    # Before: "Li-\nion cells with Fe-\nN sites" (the hyphens kept, the words split, so
    # "Li-ion" could not be grounded). Hyphenation itself is tested in test_pdf_text.py.
    path = make_pdf(tmp_path / "hyphen.pdf", ["Li-\nion cells with Fe-\nN sites"])
    assert load(path)[0].text == "Li-ion\ncells with Fe-N\nsites"


@pytest.mark.parametrize("cut", [0.5, 0.1])
def test_truncated_pdf(tmp_path: Path, cut: float) -> None:
    good = make_pdf(tmp_path / "good.pdf", ["Some text"]).read_bytes()
    path = write(tmp_path / "broken.pdf", good[: int(len(good) * cut)])
    with pytest.raises(DocumentError, match="corrupt or truncated PDF") as info:
        load(path)
    assert info.value.path == str(path)
    assert "download the file again" in info.value.hint


def test_pdf_that_is_not_a_pdf(tmp_path: Path) -> None:
    path = write(tmp_path / "fake.pdf", "this is plain text with a .pdf name")
    with pytest.raises(DocumentError, match="corrupt or truncated PDF"):
        load(path)


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", ["", ""])
    with pytest.raises(DocumentError, match="scanned PDF without a text layer") as info:
        load(path)
    assert "OCR" in info.value.hint


def encrypted_pdf(path: Path, **passwords: str) -> Path:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(text="Secret TiO2 results")
    pdf.set_encryption(**passwords)  # RC4
    pdf.output(str(path))
    return path


def test_password_protected_pdf(tmp_path: Path) -> None:
    path = encrypted_pdf(tmp_path / "locked.pdf", owner_password="o", user_password="u")
    with pytest.raises(DocumentError, match="password-protected") as info:
        load(path)
    assert "qpdf" in info.value.hint and "--decrypt" in info.value.hint


def test_pdf_encrypted_with_empty_user_password_opens(tmp_path: Path) -> None:
    path = encrypted_pdf(tmp_path / "owner-only.pdf", owner_password="o")
    assert load(path)[0].text == "Secret TiO2 results"


# --- JSON and JSONL collections -------------------------------------------------------------------

def test_json_list_of_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "abstracts.json", json.dumps(["First abstract.", "  Second one.\n"]))
    docs = load(path)
    assert [d.text for d in docs] == ["First abstract.", "Second one."]
    assert [d.source for d in docs] == [f"{path}#0", f"{path}#1"]
    assert [d.sha256 for d in docs] == [sha256_text("First abstract."), sha256_text("Second one.")]
    assert all(d.pages == ((0, len(d.text)),) for d in docs)


@pytest.mark.parametrize(("item", "text", "metadata"), [
    ({"text": "Body."}, "Body.", {}),
    ({"abstract": "Body.", "doi": "10.1/x"}, "Body.", {"doi": "10.1/x"}),
    ({"prompt": "Title\nBody.\n\n###\n\n", "completion": " [...]"}, "Title\nBody.", {}),
    ({"text": "Body.", "title": "A  title ", "id": 7}, "A title\nBody.",
     {"id": 7, "title": "A title"}),
    ({"text": "A title. Body.", "title": "A title"}, "A title. Body.", {"title": "A title"}),
    ({"text": "Preferred.", "abstract": "Ignored.", "prompt": "Ignored."}, "Preferred.", {}),
], ids=["text", "abstract+doi", "nerre-prompt", "title-prepended", "title-already-there",
        "field-order"])
def test_json_item_fields(tmp_path: Path, item: dict, text: str, metadata: dict) -> None:
    [doc] = load(write(tmp_path / "one.json", json.dumps([item])))
    assert doc.text == text
    assert doc.metadata == metadata


def test_json_single_object_is_one_item(tmp_path: Path) -> None:
    path = write(tmp_path / "one.json", json.dumps({"abstract": "Only abstract."}))
    [doc] = load(path)
    assert (doc.text, doc.source) == ("Only abstract.", f"{path}#0")


NERRE_DOPING_EXCERPT = [{
    "doi": "10.1016/j.materresbull.2016.09.017",
    "text": "We report the properties of upconversion photoluminescence (UCPL) on SrLaMgTaO6 "
            "crystal doped with trivalent erbium.",
    "title": "Upconversion luminescence properties of Er3+ in SrLaMgTaO6 double perovskite "
             "phosphor ",
    "doping_sentences": [{"sentence_text": "We report ...", "basemats": {"b0": "SrLaMgTaO6"},
                          "dopants": {"d0": "trivalent erbium"}, "relevant": True}],
}]


def test_nerre_doping_excerpt(tmp_path: Path) -> None:
    [doc] = load(write(tmp_path / "train.json", json.dumps(NERRE_DOPING_EXCERPT)))
    item = NERRE_DOPING_EXCERPT[0]
    assert doc.text == item["title"].strip() + "\n" + item["text"]
    assert doc.metadata == {"doi": item["doi"], "title": item["title"].strip()}
    assert doc.sha256 == sha256_text(doc.text)


def test_jsonl_with_nerre_prompts_and_blank_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"prompt": "MOF title\nAbstract one.\n\n###\n\n", "completion": " []"}),
             "",
             json.dumps({"prompt": "Abstract two.\n\n###\n\n", "completion": " []"})]
    path = write(tmp_path / "mof.jsonl", "\n".join(lines) + "\n")
    docs = load(path)
    assert [d.text for d in docs] == ["MOF title\nAbstract one.", "Abstract two."]
    assert [d.source for d in docs] == [f"{path}#0", f"{path}#1"]


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("bad.json", '[\n  {"text": "ok"},\n  {"text": oops}\n]', "invalid JSON at line 3"),
    ("bad.jsonl", '{"text": "ok"}\n\n{"text": "cut', "invalid JSON on line 3"),
    ("fields.json", '[{"text": "ok"}, {"body": "no known field"}]', "item 1 has no text field"),
    ("fields.jsonl", '{"title": "only a title"}', "item 0 has no text field"),
    ("numbers.json", "[1, 2]", "item 0 has no text field"),
    ("blank.json", '["fine", "   "]', "item 1 has empty text"),
    ("scalar.json", '"just a string"', "JSON top level is a str"),
    ("nothing.json", "[]", "holds no items"),
])
def test_json_errors(tmp_path: Path, name: str, content: str, problem: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DocumentError, match=problem) as info:
        load(path)
    assert info.value.path == str(path)
    assert info.value.hint


def test_no_text_field_error_lists_the_fields(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as info:
        load(write(tmp_path / "x.json", '[{"body": "?"}]'))
    assert all(field in info.value.message for field in ("'text'", "'abstract'", "'prompt'"))


# --- the real NERRE data (skipped where ../shared is absent) -------------------------------

def nerre_file(relative: str) -> Path:
    path = NERRE / relative
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.parametrize(("relative", "count"), [("doping/data/train.json", 162),
                                                 ("doping/data/test.json", 31)])
def test_real_nerre_doping_files(relative: str, count: int) -> None:
    path = nerre_file(relative)
    docs = load(path)
    items = json.loads(path.read_text())
    assert len(docs) == len(items) == count
    for doc, item in zip(docs, items):
        assert doc.text.endswith(item["text"].strip())
        assert doc.text.startswith(" ".join(item["title"].split()))
        assert doc.metadata["doi"] == item["doi"]


def test_real_nerre_raw_abstracts() -> None:
    path = nerre_file("doping/data/raw_data.json")
    docs = load(path)
    items = json.loads(path.read_text())
    assert len(docs) == len(items)
    assert docs[0].text.startswith("Comparison of chemical bath-deposited ZnO films doped with "
                                   "Al, Ga and In\nA comparative study")
    assert docs[-1].source == f"{path}#{len(items) - 1}"


@pytest.mark.parametrize("name", ["mof_annotations.jsonl",
                                  "general_materials_information_annotations.jsonl"])
def test_real_nerre_jsonl(name: str) -> None:
    path = nerre_file(f"general_and_mofs/data/{name}")
    docs = load(path)
    assert len(docs) == sum(1 for line in path.read_text().splitlines() if line.strip())
    assert not any("###" in d.text[-10:] for d in docs)
    assert len({d.sha256 for d in docs}) > 0.9 * len(docs)


# --- in-memory text -----------------------------------------------------------------------------

def test_load_text() -> None:
    doc = load_text("Pasted\r\nabstract about MoS2.", source="<clipboard>")
    assert doc.text == "Pasted\nabstract about MoS2."
    assert doc.source == "<clipboard>"
    assert doc.sha256 == sha256_text(doc.text)
    assert doc.pages == ((0, len(doc.text)),)
    assert load_text("x").source == "<text>"


def test_load_text_rejects_empty() -> None:
    with pytest.raises(DocumentError, match="empty"):
        load_text(" \n ")
