"""PDF text (extraction/documents/pdf.py) on generated papers (bench/pdf_corpus.py)
and on the bundled sample.

The corpus PDFs use a Unicode TrueType font (Debian's fonts-dejavu-core); without it those
tests skip and say so. CER threshold: measured 0.00-0.04% per document (bench/bench_pdf.py,
3 documents per layout; the errors left are compounds such as "screen-|printed" whose hyphen
cannot be told from hyphenation); the raw libraries measured 2.4-62%.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_pdf import cer
from bench.pdf_corpus import (FONT_MISSING, FONT_REGULAR, LAYOUTS, CorpusDoc, make_corpus,
                              word_runs)
from extraction.documents.loading import load
from extraction.documents.pdf import clean_text, join_hyphenation
from extraction.resources import samples_dir
from extraction.types import Document

MAX_CER = 0.003
needs_font = pytest.mark.skipif(not FONT_REGULAR.is_file(), reason=FONT_MISSING)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CorpusDoc, Document]]:
    if not FONT_REGULAR.is_file():
        pytest.skip(FONT_MISSING)
    docs = make_corpus(tmp_path_factory.mktemp("pdf-corpus"), docs=1)
    out = {}
    for doc in docs:
        [loaded] = load(doc.pdf)
        out[doc.layout] = (doc, loaded)
    return out


@needs_font
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_corpus_text_matches_its_source(corpus, layout: str) -> None:
    source, doc = corpus[layout]
    assert cer(doc.text, source.text) < MAX_CER
    assert "\ufb01" not in doc.text and "\ufb02" not in doc.text  # ligatures expanded
    assert "\ufffe" not in doc.text and "\x02" not in doc.text


@needs_font
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_corpus_formulas_and_minus_signs_intact(corpus, layout: str) -> None:
    source, doc = corpus[layout]
    formulas = {w.strip(",.;()") for w in source.text.split() if len(word_runs(w)) > 1}
    assert len(formulas) >= 5
    for formula in formulas:
        assert formula in doc.text
    assert doc.text.count("\u2212") == source.text.count("\u2212") > 0
    assert "?" not in "".join(formulas)


@needs_font
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_corpus_pages_headers_and_hyphenation(corpus, layout: str) -> None:
    source, doc = corpus[layout]
    assert len(doc.pages) == len(source.pages) >= 2
    assert doc.metadata == {"format": "pdf", "page_count": len(source.pages)}
    for number, ((start, end), page_source) in enumerate(zip(doc.pages, source.pages), 1):
        assert cer(doc.text[start:end], page_source) < 2 * MAX_CER
        last_word = page_source.split()[-1]
        assert doc.page_of(doc.text.rindex(last_word, start, end)) == number
    assert "Synthetic Materials Letters" not in doc.text  # running header
    assert "Page 1" not in doc.text and "Page 2" not in doc.text  # running footer
    # Every long word of the source comes back whole, though some were hyphenated.
    long_words = {w.strip(",.;:()") for w in source.text.split()}
    long_words = {w for w in long_words if w.isalpha() and w.islower() and len(w) >= 9}
    missing = sorted(w for w in long_words if w not in doc.text)
    assert not missing


@needs_font
def test_corpus_has_what_makes_pdfs_hard(corpus) -> None:
    """Guards the generator: the cases above are only tested while the PDFs hold them."""
    import pypdfium2 as pdfium

    source, _ = corpus["2 columns"]
    pdf = pdfium.PdfDocument(source.pdf)
    try:
        raw = "".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()
    assert raw.count("\ufffe") >= 5  # line-end hyphens
    assert "Synthetic Materials Letters" in raw


@pytest.mark.parametrize(("pages", "expected"), [
    (["were dop-\ning with Er"], ["were doping\nwith Er"]),
    (["Al-\ndoped ZnO"], ["Al-doped\nZnO"]),
    (["Li-\nion cells with Fe-\nN sites"], ["Li-ion\ncells with Fe-N\nsites"]),
    (["the group-\n13 metals"], ["the group-13\nmetals"]),
    (["an n-\ntype layer"], ["an n-type\nlayer"]),
    (["TiO2/\ngraphene films"], ["TiO2/graphene\nfilms"]),
    (["space-charge layer; the space-\ncharge"], ["space-charge layer; the space-charge"]),
    (["interface states; the inter-\nface"], ["interface states; the interface"]),
    (["PDFium's marker anoma\ufffe\nlies here"], ["PDFium's marker anomalies\nhere"]),
    (["a hyphen-\n\nbefore a blank line"], ["a hyphen-\n\nbefore a blank line"]),
    (["page end dop-", "ing"], ["page end dop-", "ing"]),
], ids=["hyphenation", "element", "existing-test", "digit", "single-letter", "slash",
        "known-compound", "known-word", "pdfium-marker", "paragraph", "page-end"])
def test_join_hyphenation(pages: list[str], expected: list[str]) -> None:
    assert join_hyphenation(pages) == expected


def test_clean_text_expands_ligatures() -> None:
    assert clean_text("e\ufb03cient \ufb01lms re\ufb02ect\x00") == "efficient films reflect"


@needs_font
def test_superscript_after_a_digit_stays_a_superscript(tmp_path: Path) -> None:
    """Plain "1018" would be another number; "Eu3+" and "Fe2O3" stay plain (NERRE's form)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("DejaVu", "", str(FONT_REGULAR))
    pdf.add_page()
    x = 60.0
    for text, shift in [("Eu", 0), ("3+", -3.8), (" at 1 × 10", 0), ("18", -3.8), (" cm", 0),
                        ("\u22123", -3.8), (" in Fe", 0), ("2", 2.5), ("O", 0), ("3", 2.5)]:
        pdf.set_font("DejaVu", "", 7 if shift else 10)
        pdf.text(x, 100 + shift, text)
        x += pdf.get_string_width(text)
    pdf.output(str(tmp_path / "scripts.pdf"))
    [doc] = load(tmp_path / "scripts.pdf")
    assert doc.text == "Eu3+ at 1 × 10¹⁸ cm\u22123 in Fe2O3"


def test_sample_pdf_has_its_formulas() -> None:
    [doc] = load(samples_dir() / "doping_paper.pdf")
    assert "Nd2\u2212xCexCuO4" in doc.text
    assert "Pr2\u2212xCexCuO4" in doc.text  # the title of page 2
    assert "europium" in doc.text
    assert "YVO4:Eu3+" in doc.text and "580 cm\u22121" in doc.text
    assert "?" not in doc.text
    assert len(doc.pages) == 3
    assert doc.page_of(doc.text.index("europium")) == 1
    assert doc.page_of(doc.text.index("Nd2\u2212x")) == 2
    assert doc.page_of(doc.text.index("GaAs")) == 3
