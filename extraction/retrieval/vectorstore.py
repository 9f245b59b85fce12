"""LangChain ``VectorStore`` over ``HnswIndex``, for users who compose matextract with LangChain.

Our embedders expose ``embed(texts) -> ndarray`` plus ``name``/``dim`` (the index needs both to
refuse mixed embedding spaces); LangChain's ``Embeddings`` exposes ``embed_documents`` /
``embed_query`` returning lists. The two adapters here translate in each direction, so either
kind can be passed in. Scores are cosine similarities (higher is closer), not distances.

Index rows use the same layout as ``HnswIndex.add_chunks`` (a ``text`` field plus flat
metadata), so a store opened on a chunk index returns the chunks as ``Document`` objects.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from extraction.retrieval.embeddings import TextEmbedder
from extraction.retrieval.index import HnswIndex

TEXT_KEY, ID_KEY = "text", "lc_id"  # reserved keys in index rows


class EmbedderEmbeddings(Embeddings):
    """Our embedder seen as LangChain ``Embeddings`` (for ``VectorStore.embeddings``)."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed([text])[0].tolist()


class LangChainEmbedder:
    """LangChain ``Embeddings`` seen as our embedder; ``name`` is what the index records."""

    def __init__(self, embeddings: Embeddings, *, name: str | None = None) -> None:
        self.embeddings = embeddings
        self._name = name or f"langchain:{type(embeddings).__name__}"
        self._dim: int | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        if self._dim is None:  # LangChain has no dimension API: embed a probe once
            self._dim = len(self.embeddings.embed_query("dimension probe"))
        return self._dim

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        vectors = np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)
        return vectors.reshape(len(texts), -1)  # (n, d), also for n == 0

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embeddings.embed_query(text), dtype=np.float32)  # (d,)


def as_embedder(embedding: TextEmbedder | Embeddings) -> TextEmbedder:
    if isinstance(embedding, EmbedderEmbeddings):  # our own adapter: unwrap, keep the name
        return embedding.embedder
    if isinstance(embedding, Embeddings):
        return LangChainEmbedder(embedding)
    if all(hasattr(embedding, attr) for attr in ("embed", "dim", "name")):
        return embedding
    raise TypeError(f"expected an Embedder (embed/dim/name) or LangChain Embeddings, "
                    f"got {type(embedding).__name__}")


class MatextractVectorStore(VectorStore):
    """Append-only vector store: ``add_texts``, ``similarity_search*``, ``get_by_ids``."""

    def __init__(self, embedding: TextEmbedder | Embeddings, *,
                 index: HnswIndex | None = None, **index_options: Any) -> None:
        self.embedder = as_embedder(embedding)
        if index is None:
            index = HnswIndex(self.embedder.dim, self.embedder.name, **index_options)
        index.ensure_compatible(self.embedder.name, self.embedder.dim)
        self.index = index
        self._ids: dict[str, int] = {}  # LangChain string id -> index id
        for i in range(len(index)):
            self._ids[str(index.metadata(i).get(ID_KEY, i))] = i
        self._lock = threading.Lock()

    @property
    def embeddings(self) -> Embeddings:
        if isinstance(self.embedder, LangChainEmbedder):
            return self.embedder.embeddings
        return EmbedderEmbeddings(self.embedder)

    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None,
                  *, ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        texts = list(texts)
        metadatas = metadatas if metadatas is not None else [{} for _ in texts]
        if len(metadatas) != len(texts) or (ids is not None and len(ids) != len(texts)):
            raise ValueError(f"{len(texts)} texts, {len(metadatas)} metadatas, "
                             f"{len(ids) if ids is not None else '-'} ids: lengths must match")
        for meta in metadatas:
            if TEXT_KEY in meta or ID_KEY in meta:
                raise ValueError(f"metadata keys {TEXT_KEY!r} and {ID_KEY!r} are reserved")
        vectors = self.embedder.embed(texts)  # (n, d), outside the lock: the slow part
        with self._lock:
            start = len(self.index)
            wanted = [str(x) for x in ids] if ids is not None else [
                str(start + n) for n in range(len(texts))]
            clashes, seen = [], set()
            for lc_id in wanted:
                if lc_id in self._ids or lc_id in seen:
                    clashes.append(lc_id)
                seen.add(lc_id)
            if clashes:
                raise ValueError(f"ids already present: {clashes[:5]} (this store is append-only)")
            rows = [{**meta, TEXT_KEY: text, ID_KEY: lc_id}
                    for meta, text, lc_id in zip(metadatas, texts, wanted)]
            for lc_id, i in zip(wanted, self.index.add(vectors, rows)):
                self._ids[lc_id] = i
        return wanted

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, *,
                                     filter: dict[str, Any] | None = None,
                                     filter_ids: set[int] | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """(document, cosine similarity) pairs, best first. ``filter`` keeps documents whose
        metadata equals every given key/value; ``filter_ids`` restricts to index ids."""
        if isinstance(self.embedder, LangChainEmbedder):
            vector = self.embedder.embed_query(query)
        else:
            vector = self.embedder.embed([query])[0]
        return self._search(vector, k, filter=filter, filter_ids=filter_ids)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, *,
                                    filter: dict[str, Any] | None = None,
                                    filter_ids: set[int] | None = None,
                                    **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self._search(np.asarray(embedding, dtype=np.float32), k,
                                               filter=filter, filter_ids=filter_ids)]

    def _search(self, vector: np.ndarray, k: int, *, filter: dict[str, Any] | None,
                filter_ids: set[int] | None) -> list[tuple[Document, float]]:
        allowed = filter_ids
        if filter:
            matching = {i for i in range(len(self.index))
                        if all(self.index.metadata(i).get(key) == value
                               for key, value in filter.items())}
            allowed = matching if allowed is None else matching & set(allowed)
        hits = self.index.search(vector, k, filter_ids=allowed)[0]
        return [(_to_document(i, row), score) for i, score, row in hits]

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        found = [(x, self._ids[x]) for x in dict.fromkeys(ids) if x in self._ids]
        return [_to_document(i, self.index.metadata(i)) for _, i in found]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Scores are already cosine similarities; LangChain wants [0, 1], so clip negatives.
        return lambda score: min(1.0, max(0.0, score))

    @classmethod
    def from_texts(cls, texts: list[str], embedding: TextEmbedder | Embeddings,  # type: ignore[override]
                   metadatas: list[dict[str, Any]] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> MatextractVectorStore:
        """New store holding ``texts``; ``kwargs`` go to ``HnswIndex`` (M, ef_search, ...)."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def save(self, folder: str | os.PathLike[str]) -> None:
        self.index.save(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike[str],
             embedding: TextEmbedder | Embeddings) -> MatextractVectorStore:
        """Open a saved index; refuses one built with another embedding model."""
        return cls(embedding, index=HnswIndex.load(folder))


def _to_document(i: int, row: dict[str, Any]) -> Document:
    metadata = {key: value for key, value in row.items() if key not in (TEXT_KEY, ID_KEY)}
    return Document(page_content=str(row.get(TEXT_KEY, "")), metadata=metadata,
                    id=str(row.get(ID_KEY, i)))
