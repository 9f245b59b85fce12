"""Evidence: where in the source each extracted string value was found.

Exact match first; then a normalised match (case, unicode dashes/minus, whitespace runs,
compatibility forms such as subscript digits) with offsets mapped back to the original text.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from extraction.types import Document

MAX_SPANS_PER_VALUE = 5
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")


@dataclass(frozen=True)
class Span:
    """One occurrence of a value in the document."""

    start: int
    end: int
    page: int | None
    text: str  # document.text[start:end]
    match: str  # "exact" | "normalised"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise_char(char: str) -> str:
    folded = unicodedata.normalize("NFKC", char.translate(_DASHES)).casefold()
    return " " if folded.isspace() else folded


class NormalisedText:
    """A normalised copy of a text plus, for each of its characters, the source offset."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[int] = []
        for offset, char in enumerate(text):
            piece = _normalise_char(char)
            if piece == " " and chars and chars[-1] == " ":
                continue  # collapse whitespace runs
            for out in piece:
                chars.append(out)
                origin.append(offset)
        self.text = "".join(chars)
        self.origin = origin

    def to_source(self, start: int, end: int) -> tuple[int, int]:
        return self.origin[start], self.origin[end - 1] + 1


def normalise(value: str) -> str:
    return NormalisedText(value.strip()).text


class Grounder:
    """Finds spans in one document; the normalised index is built once per document."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self._normalised: NormalisedText | None = None

    def locate(self, value: str) -> list[Span]:
        value = value.strip()
        if not value:
            return []
        spans = self._find(self.document.text, value, "exact", lambda s, e: (s, e))
        if spans:
            return spans
        if self._normalised is None:
            self._normalised = NormalisedText(self.document.text)
        needle = normalise(value)
        if not needle:
            return []
        return self._find(self._normalised.text, needle, "normalised", self._normalised.to_source)

    def _find(self, haystack: str, needle: str, kind: str, to_source: Any) -> list[Span]:
        """All occurrences, whole-word ones first ("N" in "N-doped" before "N" in "Nb")."""
        positions = []
        position = haystack.find(needle)
        while position != -1:
            positions.append(position)
            position = haystack.find(needle, position + 1)
        positions.sort(key=lambda p: not _whole_word(haystack, p, p + len(needle)))
        spans = []
        for position in positions[:MAX_SPANS_PER_VALUE]:
            start, end = to_source(position, position + len(needle))
            spans.append(Span(start, end, self.document.page_of(start),
                              self.document.text[start:end], kind))
        return spans


def _whole_word(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())
