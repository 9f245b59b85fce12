"""extraction.chunking: chunks and sentence spans must be exact slices of the text."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fpdf import FPDF

from extraction.documents.chunking import sentences, split
from extraction.documents.loading import load
from extraction.errors import ConfigError
from extraction.types import Document

PROSE = (
    "Hematite (α-Fe2O3) thin films were deposited by spray pyrolysis at 450 °C. "
    "Doping with 2 at.% Ti raised the photocurrent to 1.2 mA cm−2, see Fig. 3.\n"
    "The band gap of 2.1 eV was unchanged; the Urbach energy rose slightly.\n\n"
) * 12 + "Er3+ ions in SrLaMgTaO6 gave green emission at 550 nm. " * 15

TEXTS = {
    "prose": PROSE,
    "repetitive": "a a a a b " * 300,
    "one-long-word": "x" * 2500,
    "no-spaces-formulas": "Ca2+;Fe2O3;LiFePO4;" * 100,
    "leading-whitespace": "\n\n   " + PROSE[:1500] + "   \n",
}


def covered(chunks: list) -> set[int]:
    return {i for c in chunks for i in range(c.start, c.end)}


@pytest.mark.parametrize("name", list(TEXTS))
@pytest.mark.parametrize(("chunk_size", "chunk_overlap"),
                         [(1000, 150), (200, 50), (64, 0), (50, 49)])
def test_chunks_are_exact_slices(name: str, chunk_size: int, chunk_overlap: int) -> None:
    doc = Document.from_text(TEXTS[name], source="mem")
    chunks = split(doc, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    assert chunks
    for i, chunk in enumerate(chunks):
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
        assert len(chunk.text) <= chunk_size
        assert chunk.index == i
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts))  # strictly increasing
    for before, after in zip(chunks, chunks[1:]):
        assert max(0, before.end - after.start) <= chunk_overlap
    # Nothing but whitespace is lost between chunks.
    seen = covered(chunks)
    assert all(ch.isspace() for i, ch in enumerate(doc.text) if i not in seen)


@pytest.mark.parametrize("seed", range(40))
def test_chunks_of_repetitive_text_sit_where_the_splitter_cut(seed: int) -> None:
    # Short repeated tokens make every chunk occur many times in the text; locating chunks
    # with str.find (as langchain's add_start_index does) then picks wrong copies, which
    # shows up as out-of-order chunks, overlaps above the limit, or text left uncovered.
    rng = random.Random(seed)
    tokens = ["TiO2 ", "TiO2", "Fe2O3. ", "x" * 30, " ", "   ", "\n", "\n\n", "Ca2+. ", "a; ",
              "b, ", "\t", "é"]
    text = "".join(rng.choice(tokens) for _ in range(rng.randint(50, 400)))
    chunk_size = rng.randint(5, 120)
    chunk_overlap = rng.randint(0, chunk_size - 1)
    doc = Document.from_text(text)
    chunks = split(doc, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    assert all(doc.text[c.start:c.end] == c.text and len(c.text) <= chunk_size for c in chunks)
    assert [c.start for c in chunks] == sorted({c.start for c in chunks})
    assert [c.end for c in chunks] == sorted({c.end for c in chunks})
    assert all(a.end - b.start <= chunk_overlap for a, b in zip(chunks, chunks[1:]))
    seen = covered(chunks)
    assert all(ch.isspace() for i, ch in enumerate(text) if i not in seen)


def test_chunks_overlap_when_asked() -> None:
    doc = Document.from_text(PROSE)
    with_overlap = split(doc, chunk_size=300, chunk_overlap=100)
    without = split(doc, chunk_size=300, chunk_overlap=0)
    assert any(b.end > a.start for b, a in zip(with_overlap, with_overlap[1:]))
    assert all(b.end <= a.start for b, a in zip(without, without[1:]))


def test_chunks_prefer_paragraph_and_sentence_boundaries() -> None:
    doc = Document.from_text(PROSE)
    chunks = split(doc, chunk_size=400, chunk_overlap=0)
    # Every chunk ends at the end of a sentence or clause, never mid-word.
    assert all(c.text[-1] in ".;," or c.end == len(doc.text.rstrip()) for c in chunks)
    assert not any(c.text.startswith((". ", "; ", ", ")) for c in chunks)


def test_short_document_is_one_chunk() -> None:
    doc = Document.from_text("  Short abstract about MoS2.\n", source="a.txt")
    [chunk] = split(doc)
    assert (chunk.text, chunk.start, chunk.end) == ("Short abstract about MoS2.", 2, 28)
    assert (chunk.source, chunk.doc_sha256, chunk.page, chunk.index) == ("a.txt", doc.sha256, 1, 0)


def test_whitespace_document_has_no_chunks() -> None:
    assert split(Document.from_text(" \n\n ")) == []


def test_chunk_pages_from_page_ranges() -> None:
    page1, page2 = "First page text. " * 20, "Second page text. " * 20
    text = page1 + "\n\n" + page2
    doc = Document(text=text, source="p.pdf", sha256="0" * 64,
                   pages=((0, len(page1)), (len(page1) + 2, len(text))))
    chunks = split(doc, chunk_size=120, chunk_overlap=20)
    assert [c.page for c in chunks] == [1 if c.start < len(page1) else 2 for c in chunks]
    assert {c.page for c in chunks} == {1, 2}


def test_chunk_pages_from_a_real_pdf(tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for word in ("alpha", "beta", "gamma"):
        pdf.add_page()
        pdf.multi_cell(0, 5, f"Page {word}: " + f"{word} phase of TiO2 grows. " * 30)
    pdf.output(str(tmp_path / "three.pdf"))
    [doc] = load(tmp_path / "three.pdf")
    chunks = split(doc, chunk_size=200, chunk_overlap=30)
    for chunk in chunks:
        assert doc.text[chunk.start:chunk.end] == chunk.text
        word = ("alpha", "beta", "gamma")[chunk.page - 1]
        assert word in chunk.text
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)
    assert {c.page for c in chunks} == {1, 2, 3}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"chunk_size": 0}, "chunk_size must be positive"),
    ({"chunk_size": -5, "chunk_overlap": 0}, "chunk_size must be positive"),
    ({"chunk_overlap": -1}, "chunk_overlap must be >= 0"),
    ({"chunk_size": 100, "chunk_overlap": 100}, r"chunk_overlap \(100\) must be smaller"),
    ({"chunk_size": 100, "chunk_overlap": 150}, r"chunk_overlap \(150\) must be smaller"),
    ({"chunk_size": 10.5}, "chunk_size must be an integer"),
    ({"chunk_overlap": True}, "chunk_overlap must be an integer"),
])
def test_invalid_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split(Document.from_text("text"), **kwargs)


# --- sentences ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
    ("Doped with Ca2+. The films grew.", ["Doped with Ca2+.", "The films grew."]),
    ("A gap of 0.5 eV and 1.2 eV. Next.", ["A gap of 0.5 eV and 1.2 eV.", "Next."]),
    ("Oxides, e.g. TiO2, and i.e. ZnO work.", ["Oxides, e.g. TiO2, and i.e. ZnO work."]),
    ("As in Fig. 2 and Eq. 3 it rises.", ["As in Fig. 2 and Eq. 3 it rises."]),
    ("Smith et al. (2019) found it. Yes.", ["Smith et al. (2019) found it.", "Yes."]),
    ("See (Fig. 4b). Done.", ["See (Fig. 4b).", "Done."]),
    ("CaSO4·2H2O.5H2O stays whole. Ok.", ["CaSO4·2H2O.5H2O stays whole.", "Ok."]),
    ("Grains of 5 nm. The end.", ["Grains of 5 nm.", "The end."]),
    ("It was (fully) dense.) Next one.", ["It was (fully) dense.)", "Next one."]),
    ("Title without stop\n\nFirst sentence.", ["Title without stop", "First sentence."]),
    ("A line that wraps\nin a PDF. Next.", ["A line that wraps\nin a PDF.", "Next."]),
    ("Lower case after stop. pH was 7.", ["Lower case after stop. pH was 7."]),
    ("α-Fe2O3 forms. β-phase follows.", ["α-Fe2O3 forms.", "β-phase follows."]),
    ("  \n ", []),
    ("", []),
], ids=lambda v: v[:24] if isinstance(v, str) else None)
def test_sentences(text: str, expected: list[str]) -> None:
    spans = sentences(text)
    assert [text[s:e] for s, e in spans] == expected


def test_sentence_spans_are_trimmed_ordered_and_exact() -> None:
    spans = sentences(PROSE)
    assert len(spans) > 50
    for (s, e), (next_s, _) in zip(spans, spans[1:]):
        assert e <= next_s
        assert PROSE[s:e] == PROSE[s:e].strip()
        assert PROSE[e:next_s].strip() == ""  # only whitespace between sentences
