"""Small file helpers that every writer shares: hashing and all-or-nothing writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def temp_path(folder: Path, name: str) -> Path:
    """A fresh hidden file next to its final destination (same filesystem: rename is atomic)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(handle)
    return Path(path)


def fsync_path(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file's name durable, not only its bytes."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: str | bytes = b"", *,
                 writer: Callable[[Path], None] | None = None) -> None:
    """Write all or nothing: a crash never leaves a half-written file at ``path``.

    The file gets the usual permissions (mkstemp alone makes 0600; results are meant to be
    shared). ``writer`` fills the temporary file itself (e.g. a Parquet writer) instead of
    ``data``.
    """
    tmp = temp_path(path.parent, path.name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        if writer is not None:
            writer(tmp)
        elif isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
