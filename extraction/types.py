"""Plain data passed between pipeline steps. No behaviour beyond small helpers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """The text of one input unit, with where it came from.

    ``pages`` holds (start, end) character ranges of ``text``, one per page (a single range
    for formats without pages). Offsets everywhere in matextract index into ``text``.
    ``sha256`` is the hash of the source file's bytes (or of the text for in-memory input),
    so a renamed file is still recognised.
    """

    text: str
    source: str
    sha256: str
    pages: tuple[tuple[int, int], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>", **metadata: Any) -> Document:
        return cls(text=text, source=source, sha256=sha256_text(text),
                   pages=((0, len(text)),), metadata=dict(metadata))

    def page_of(self, offset: int) -> int | None:
        """1-based page number that holds character ``offset`` (None if unknown)."""
        for number, (start, end) in enumerate(self.pages, start=1):
            if start <= offset < end or (offset == end == len(self.text)):
                return number
        return None


@dataclass(frozen=True)
class Chunk:
    """A slice ``document.text[start:end]`` used for embedding and retrieval."""

    text: str
    start: int
    end: int
    page: int | None
    doc_sha256: str
    source: str
    index: int  # position of the chunk within its document
