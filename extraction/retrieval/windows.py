"""Pick the parts of a long document that are relevant to a schema's fields.

Each field description is a query; a chunk's relevance is its best similarity to any query.
The chosen chunks are merged, in document order, into a few windows the model reads.
"""

from __future__ import annotations

from extraction.documents import chunking
from extraction.retrieval.embeddings import TextEmbedder
from extraction.retrieval.index import HnswIndex
from extraction.schemas.base import SchemaSpec
from extraction.types import Chunk, Document, Window


def queries_for(spec: SchemaSpec) -> list[str]:
    return [f"{path.replace('[]', '')}: {text}" for path, text in spec.field_descriptions().items()]


def index_document(document: Document, chunks: list[Chunk], *, embedder: TextEmbedder,
                   index: HnswIndex) -> set[int]:
    """Make sure the document's chunks are in ``index``; return their ids."""
    if not index.has_document(document.sha256):
        index.add_chunks(chunks, embedder.embed([c.text for c in chunks]))
    return index.ids_for_document(document.sha256)


def select(document: Document, spec: SchemaSpec, *, embedder: TextEmbedder,
           index: HnswIndex | None = None, chunk_size: int = 800, chunk_overlap: int = 100,
           top_k: int = 4) -> list[Window]:
    """The ``top_k`` most relevant chunks of ``document``, merged into windows."""
    chunks = chunking.split(document, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    if len(chunks) <= top_k:
        return merge(document, [(c.start, c.end, 1.0) for c in chunks])
    if index is None:
        index = HnswIndex(dim=embedder.dim, embedding_model=embedder.name)
    ids = index_document(document, chunks, embedder=embedder, index=index)
    query_vectors = embedder.embed(queries_for(spec))  # (q, d)
    best: dict[tuple[int, int], float] = {}
    for hits in index.search(query_vectors, top_k, filter_ids=ids):
        for _, similarity, meta in hits:
            key = (int(meta["start"]), int(meta["end"]))
            best[key] = max(best.get(key, -1.0), similarity)
    chosen = sorted(best.items(), key=lambda item: -item[1])[:top_k]
    return merge(document, [(start, end, score) for (start, end), score in chosen])


def merge(document: Document, spans: list[tuple[int, int, float]]) -> list[Window]:
    """Overlapping or touching spans become one window, in document order."""
    windows: list[list[float]] = []
    for start, end, score in sorted(spans):
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
            windows[-1][2] = max(windows[-1][2], score)
        else:
            windows.append([start, end, score])
    return [Window(int(s), int(e), document.text[int(s):int(e)], float(score))
            for s, e, score in windows]
