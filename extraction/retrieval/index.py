"""Approximate nearest-neighbour index over chunk embeddings (hnswlib, cosine space).

Ids are dense integers 0..n-1 in insertion order; each id has one JSON-able metadata dict.
Persisted as a folder: ``index.bin`` (the hnswlib graph), ``metadata.jsonl`` (one line per
id) and ``index.json`` (the parameters that built it, the embedding model, checksums).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from extraction.errors import IndexStoreError
from extraction.storage.fileio import fsync_path, sha256_file, temp_path, write_atomic
from extraction.types import Chunk

FORMAT_VERSION = 1
INDEX_FILE, METADATA_FILE, MANIFEST_FILE = "index.bin", "metadata.jsonl", "index.json"
# With a filter this small, exact search over the allowed vectors is cheaper than letting
# hnswlib call a Python predicate on every visited node (TRAPS.md: filters halve QPS), and it
# cannot come back short when few elements pass.
EXACT_FILTER_LIMIT = 2048

Hit = tuple[int, float, dict[str, Any]]  # (id, cosine similarity, metadata)


@dataclass(frozen=True)
class HnswParams:
    """Everything needed to rebuild or check an index; saved in ``index.json``."""

    dim: int  # vector size; must match the embedding model
    embedding_model: str  # canonical embedder name; queries from another model are refused
    M: int = 32  # graph degree: higher = better recall, more memory
    ef_construction: int = 200  # build-time beam width: higher = better graph, slower build
    ef_search: int = 64  # query-time beam width (raised to k when k is larger)
    space: str = "cosine"

    def __post_init__(self) -> None:
        for field in ("dim", "M", "ef_construction", "ef_search"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"HnswParams.{field} must be >= 1, got {getattr(self, field)}")
        if self.space != "cosine":
            raise ValueError(f"HnswParams.space: only 'cosine' is supported, got {self.space!r}")
        if not self.embedding_model:
            raise ValueError("HnswParams.embedding_model must name the embedder")


class HnswIndex:
    """Incrementally growing HNSW index with per-id metadata. Thread-safe via one lock."""

    def __init__(self, dim: int, embedding_model: str, *, M: int = 32,
                 ef_construction: int = 200, ef_search: int = 64,
                 max_elements: int = 1024) -> None:
        self._setup(HnswParams(dim=dim, embedding_model=embedding_model, M=M,
                               ef_construction=ef_construction, ef_search=ef_search))
        self._index.init_index(max_elements=max(1, max_elements), M=M,
                               ef_construction=ef_construction)
        self._index.set_ef(ef_search)

    def _setup(self, params: HnswParams) -> None:
        """State shared by a new and a loaded index; the graph is initialised by the caller."""
        self.params = params
        self._index = hnswlib.Index(space=params.space, dim=params.dim)
        self._metadata: list[dict[str, Any]] = []
        self._by_document: dict[str, set[int]] = {}
        # hnswlib is not safe to query while inserting or resizing: one lock for everything.
        self._lock = threading.Lock()

    # -- building -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._metadata)

    @property
    def dim(self) -> int:
        return self.params.dim

    @property
    def embedding_model(self) -> str:
        return self.params.embedding_model

    def add(self, vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> list[int]:
        """Append vectors (n, dim) with one JSON-able dict each; returns their new ids."""
        vectors = self._as_matrix(vectors)
        if len(metadata) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(metadata)} metadata dicts")
        if not len(vectors):
            return []
        _check_finite_non_zero(vectors)
        rows = [dict(m) for m in metadata]
        with self._lock:
            start = len(self._metadata)
            ids = np.arange(start, start + len(vectors))
            needed = start + len(vectors)
            if needed > self._index.get_max_elements():
                self._index.resize_index(max(needed, 2 * self._index.get_max_elements()))
            self._index.add_items(vectors, ids)
            self._metadata.extend(rows)
            for i, row in zip(ids.tolist(), rows):
                self._note_document(i, row)
        return ids.tolist()

    def add_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> list[int]:
        """Add chunks with all their fields as metadata (so a hit can cite text and offsets)."""
        return self.add(vectors, [dataclasses.asdict(c) for c in chunks])

    def _note_document(self, i: int, row: dict[str, Any]) -> None:
        sha = row.get("doc_sha256")
        if isinstance(sha, str):
            self._by_document.setdefault(sha, set()).add(i)

    def ids_for_document(self, sha256: str) -> set[int]:
        with self._lock:
            return set(self._by_document.get(sha256, ()))

    def has_document(self, sha256: str) -> bool:
        """True if chunks of this document are indexed already (so callers skip re-indexing)."""
        with self._lock:
            return sha256 in self._by_document

    def set_ef_search(self, ef_search: int) -> None:
        """Trade query speed for recall after the fact (saved with the index)."""
        with self._lock:
            self.params = dataclasses.replace(self.params, ef_search=ef_search)

    def metadata(self, i: int) -> dict[str, Any]:
        return dict(self._metadata[i])

    # -- querying -----------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, *,
               filter_ids: Iterable[int] | None = None) -> list[list[Hit]]:
        """Top-k neighbours of each query row (a 1-d vector counts as one row), best first.

        ``k`` is clamped to what can be returned, since hnswlib raises when asked for more
        neighbours than it holds. ``filter_ids`` restricts the hits to those ids.
        """
        queries = self._as_matrix(query)  # (q, dim)
        _check_finite_non_zero(queries)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        with self._lock:
            count = len(self._metadata)
            allowed: set[int] | None = None
            if filter_ids is not None:
                allowed = {int(i) for i in filter_ids if 0 <= int(i) < count}
                count = len(allowed)
            k = min(k, count)
            if k == 0:
                return [[] for _ in range(len(queries))]
            if allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
                labels, sims = self._exact(queries, sorted(allowed), k)
            else:
                labels, sims = self._approximate(queries, k, allowed)
            return [[(int(i), float(s), dict(self._metadata[i])) for i, s in zip(row_i, row_s)]
                    for row_i, row_s in zip(labels, sims)]

    def _approximate(self, queries: np.ndarray, k: int,
                     allowed: set[int] | None) -> tuple[np.ndarray, np.ndarray]:
        self._index.set_ef(max(self.params.ef_search, k))
        try:
            labels, distances = self._index.knn_query(
                queries, k=k, filter=None if allowed is None else allowed.__contains__)
        except RuntimeError:
            # hnswlib found fewer than k allowed neighbours (a filtered walk can miss some):
            # exact search cannot.
            if allowed is None:
                raise
            return self._exact(queries, sorted(allowed), k)
        return labels, 1.0 - distances  # hnswlib's cosine distance is 1 - cos

    def _exact(self, queries: np.ndarray, ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        stored = np.asarray(self._index.get_items(ids), dtype=np.float32)  # (m, d), unit rows
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)  # (q, d)
        sims = q @ stored.T  # (q, m)
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # (q, k)
        return np.asarray(ids)[top], np.take_along_axis(sims, top, axis=1)

    def _as_matrix(self, vectors: np.ndarray) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {np.shape(vectors)}")
        return array

    def ensure_compatible(self, embedding_model: str, dim: int) -> None:
        """Refuse to mix embedding spaces: vectors from another model make similarity noise."""
        if embedding_model != self.embedding_model or dim != self.dim:
            raise IndexStoreError(
                f"index was built with embedding model {self.embedding_model!r} "
                f"(dim {self.dim}); got {embedding_model!r} (dim {dim})",
                hint=f"use --embedding-model {self.embedding_model}, "
                     "or rebuild the index into a new folder",
            )

    # -- persistence --------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index folder. Each file is written to a temp name and renamed, and
        ``index.json`` (with checksums of the other two) goes last, so a crash leaves either
        the old index or one that ``load`` refuses, never a silently inconsistent one."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        with self._lock:
            tmp_bin = temp_path(target, INDEX_FILE)
            tmp_meta = temp_path(target, METADATA_FILE)
            try:
                self._index.save_index(str(tmp_bin))
                with tmp_meta.open("w", encoding="utf-8") as out:
                    for i, row in enumerate(self._metadata):
                        out.write(json.dumps({"id": i, "metadata": row}, ensure_ascii=False))
                        out.write("\n")
                manifest = {"format_version": FORMAT_VERSION, **dataclasses.asdict(self.params),
                            "count": len(self._metadata),
                            "sha256": {INDEX_FILE: sha256_file(tmp_bin),
                                       METADATA_FILE: sha256_file(tmp_meta)}}
                fsync_path(tmp_bin)
                fsync_path(tmp_meta)
                os.replace(tmp_bin, target / INDEX_FILE)
                os.replace(tmp_meta, target / METADATA_FILE)
                write_atomic(target / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
            finally:
                tmp_bin.unlink(missing_ok=True)
                tmp_meta.unlink(missing_ok=True)
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> HnswIndex:
        """Open a saved index; refuses a missing, torn or corrupt folder with a hint."""
        source = Path(folder)
        hint = f"rebuild the index (delete {source} and index the documents again)"
        manifest = _read_manifest(source, hint)
        for name in (INDEX_FILE, METADATA_FILE):
            path = source / name
            if not path.is_file():
                raise IndexStoreError(f"{path} is missing", hint=hint)
            if sha256_file(path) != manifest["sha256"].get(name):
                raise IndexStoreError(f"{path} does not match its checksum in {MANIFEST_FILE} "
                                      "(corrupt, or an interrupted save)", hint=hint)
        try:
            params = HnswParams(**{f.name: manifest[f.name]
                                   for f in dataclasses.fields(HnswParams)})
        except (KeyError, ValueError) as exc:
            raise IndexStoreError(f"{source / MANIFEST_FILE}: invalid parameters: {exc}",
                                  hint=hint) from exc
        rows = _read_metadata(source / METADATA_FILE, manifest["count"], hint)
        index = cls.__new__(cls)
        index._setup(params)
        try:
            index._index.load_index(str(source / INDEX_FILE))
        except RuntimeError as exc:
            raise IndexStoreError(f"cannot read {source / INDEX_FILE}: {exc}", hint=hint) from exc
        if index._index.get_current_count() != len(rows):
            raise IndexStoreError(f"{source / INDEX_FILE} holds {index._index.get_current_count()}"
                                  f" vectors but {METADATA_FILE} has {len(rows)} rows", hint=hint)
        index._index.set_ef(index.params.ef_search)
        index._metadata = rows
        for i, row in enumerate(rows):
            index._note_document(i, row)
        return index


def _check_finite_non_zero(vectors: np.ndarray) -> None:
    if not np.isfinite(vectors).all() or not np.linalg.norm(vectors, axis=1).all():
        raise ValueError("vectors must be finite and non-zero (cosine space has no direction "
                         "for a zero vector)")


def _read_manifest(folder: Path, hint: str) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise IndexStoreError(f"no index at {folder} ({MANIFEST_FILE} not found)",
                              hint="build one first, or check the path")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexStoreError(f"{path} is not valid JSON: {exc}", hint=hint) from exc
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise IndexStoreError(f"{path}: unsupported index format {version!r} "
                              f"(this version reads {FORMAT_VERSION})", hint=hint)
    required = {"dim": int, "embedding_model": str, "M": int, "ef_construction": int,
                "ef_search": int, "space": str, "count": int, "sha256": dict}
    for key, kind in required.items():
        if not isinstance(manifest.get(key), kind):
            raise IndexStoreError(f"{path}: field {key!r} missing or not {kind.__name__}",
                                  hint=hint)
    if manifest["space"] != "cosine":
        raise IndexStoreError(f"{path}: space {manifest['space']!r} is not supported", hint=hint)
    return manifest


def _read_metadata(path: Path, count: int, hint: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                record = json.loads(line)
                if record.get("id") != number or not isinstance(record.get("metadata"), dict):
                    raise ValueError(f"line {number + 1} is not "
                                     f"{{'id': {number}, 'metadata': {{...}}}}")
                rows.append(record["metadata"])
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise IndexStoreError(f"{path} is corrupt: {exc}", hint=hint) from exc
    if len(rows) != count:
        raise IndexStoreError(f"{path} has {len(rows)} rows, {MANIFEST_FILE} says {count}",
                              hint=hint)
    return rows
