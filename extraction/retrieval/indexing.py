"""Folder -> persisted HNSW index of chunks (incremental), and queries against it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from extraction.documents import chunking
from extraction.documents import loading as documents
from extraction.documents.folders import INDEX_FOLDER, walk_folder
from extraction.retrieval.embeddings import Embedder
from extraction.errors import DocumentError, IndexStoreError
from extraction.retrieval.index import HnswIndex


def find_index(path: Path) -> Path | None:
    """The nearest index folder above a document, if any."""
    for folder in [path.resolve().parent, *path.resolve().parents]:
        candidate = folder / INDEX_FOLDER
        if (candidate / "index.json").exists():
            return candidate
    return None


def open_or_create(index_dir: Path, embedder: Embedder, **params: Any) -> HnswIndex:
    if (index_dir / "index.json").exists():
        index = HnswIndex.load(index_dir)
        index.ensure_compatible(embedder.name, embedder.dim)
        return index
    return HnswIndex(dim=embedder.dim, embedding_model=embedder.name, **params)


def build_folder_index(folder: Path, *, index_dir: Path, embedding_model: str = "minilm",
                       chunk_size: int = 800, chunk_overlap: int = 100, M: int = 32,
                       ef_construction: int = 200,
                       report: Callable[[str], None] = print) -> dict[str, Any]:
    """Index every readable document; unreadable ones are reported and skipped."""
    walk = walk_folder(folder)  # a missing folder fails before the embedder loads
    embedder = Embedder(embedding_model)
    index = open_or_create(index_dir, embedder, M=M, ef_construction=ef_construction)
    added = skipped = failed = 0
    for problem in walk.failures:  # unreadable links, loops, folders it may not list
        report(f"skipped: {problem['file']}: {problem['reason']}")
        failed += 1
    for _, display in walk.files:
        try:
            docs = documents.load(Path(display))
        except DocumentError as exc:
            report(f"skipped: {exc.message}")
            failed += 1
            continue
        for doc in docs:
            if index.has_document(doc.sha256):
                skipped += 1
                continue
            chunks = chunking.split(doc, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
            index.add_chunks(chunks, embedder.embed([c.text for c in chunks]))
            added += 1
    index.save(index_dir)
    return {"index": str(index_dir), "documents_added": added, "documents_already_indexed":
            skipped, "files_failed": failed, "chunks": len(index),
            "embedding_model": embedder.name}


def query_index(index_dir: Path, text: str, *, k: int = 5) -> list[dict[str, Any]]:
    if not (index_dir / "index.json").exists():
        raise IndexStoreError(f"no index at {index_dir}",
                              hint="build one: matextract index build FOLDER")
    index = HnswIndex.load(index_dir)
    embedder = Embedder(index.embedding_model)
    hits = index.search(embedder.embed([text]), k)[0]
    return [{"similarity": round(similarity, 4), "source": meta.get("source"),
             "start": meta.get("start"), "end": meta.get("end"), "page": meta.get("page"),
             "text": meta.get("text")} for _, similarity, meta in hits]
