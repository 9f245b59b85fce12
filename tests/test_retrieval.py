"""Retrieval on long documents: relevant chunks reach the model; persisted indexes are used."""

from __future__ import annotations

import pytest

from extraction.retrieval import windows as retrieval
from extraction.retrieval.embeddings import Embedder
from extraction.retrieval.index import HnswIndex
from extraction.retrieval.indexing import build_folder_index
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.schemas import get_schema
from extraction.types import Document

FILLER = ("The funding agency is thanked for support. The authors declare no competing "
          "interests. Data are available from the corresponding author on request. ") * 12
KEY = "Er3+ doped NaYF4 nanocrystals and Mn-doped ZnO films were synthesised."


def long_document() -> Document:
    return Document.from_text(FILLER + KEY + " " + FILLER)


@pytest.mark.slow  # embeds with the shipped MiniLM model
def test_select_finds_the_relevant_chunk():
    document = long_document()
    windows = retrieval.select(document, get_schema("doping"), embedder=Embedder(), top_k=1)
    assert len(windows) == 1 and KEY in windows[0].text
    assert document.text[windows[0].start:windows[0].end] == windows[0].text


def test_merge_joins_overlapping_spans_in_order():
    document = Document.from_text("x" * 100)
    windows = retrieval.merge(document, [(50, 70, 0.2), (0, 10, 0.9), (60, 80, 0.5)])
    assert [(w.start, w.end, w.score) for w in windows] == [(0, 10, 0.9), (50, 80, 0.5)]


@pytest.mark.slow  # MiniLM embeds the long document's chunks
def test_extractor_uses_retrieval_only_for_long_documents(tiny_model):
    extractor = Extractor(ExtractorConfig(schema_name="doping", max_attempts=1, top_k=2,
                                          short_document_chars=2000), loaded=tiny_model)
    short = extractor.extract(Document.from_text(KEY))
    assert [t["window"] for t in short.trace] == [{"start": 0, "end": len(KEY)}]
    document = long_document()
    result = extractor.extract(document)
    windows = [t["window"] for t in result.trace]
    assert any(w["start"] <= document.text.index(KEY) < w["end"] for w in windows)
    assert sum(w["end"] - w["start"] for w in windows) < len(document.text)


@pytest.mark.slow  # MiniLM embeds for the index
def test_extractor_reads_and_extends_a_persisted_index(tmp_path, tiny_model):
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "a.txt").write_text(long_document().text)
    index_dir = tmp_path / "index"
    build_folder_index(papers, index_dir=index_dir, report=lambda line: None)
    before = len(HnswIndex.load(index_dir))
    extractor = Extractor(ExtractorConfig(schema_name="doping", max_attempts=1, top_k=2,
                                          index_dir=str(index_dir)), loaded=tiny_model)
    extractor.extract(Document.from_text(FILLER + " Nb-doped SrTiO3 films. " + FILLER))
    assert len(HnswIndex.load(index_dir)) > before  # the new document was indexed and saved
