"""Evidence: where in the source each extracted string value was found.

Exact match first; then a normalised match (case, unicode dashes/minus, whitespace runs,
compatibility forms such as subscript digits) with offsets mapped back to the original text.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from extraction.documents import chunking
from extraction.schemas.base import string_leaves
from extraction.types import Document, Evidence, FieldPath, Span

MAX_SPANS_PER_VALUE = 5
MIN_NORMALISED_CHARS = 3
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")


def compatible_form(text: str) -> str:
    """Unicode dashes and minus as "-", compatibility forms (sub/superscript digits, ligatures)
    as plain characters; case kept. The extractive constraint spells values with it."""
    return unicodedata.normalize("NFKC", text.translate(_DASHES))


def normalise_char(char: str) -> str:
    """One character as grounding compares it: compatible form, case-folded, any space " "."""
    folded = compatible_form(char).casefold()
    return " " if folded.isspace() else folded


class NormalisedText:
    """A normalised copy of a text plus, for each of its characters, the source offset."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        origin: list[int] = []
        for offset, char in enumerate(text):
            piece = normalise_char(char)
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
    """Finds spans in one document; the normalised index and the sentence offsets are
    built once per document."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self._normalised: NormalisedText | None = None
        self._sentences: list[tuple[int, int]] | None = None

    def evidence(self, record: Mapping[str, Any], position: int) -> list[Evidence]:
        """Every string value of record ``position`` with the spans where it was found
        (none: ungrounded), each span with its sentence: what the pipeline reports and
        what the web UI recomputes after an edit."""
        return [Evidence(FieldPath(position, path), value,
                         tuple(self._with_sentence(span) for span in self.locate(value)))
                for path, value in string_leaves(dict(record))]

    def _with_sentence(self, span: Span) -> Span:
        if self._sentences is None:
            self._sentences = chunking.sentences(self.document.text)
        position = bisect.bisect_right(self._sentences, (span.start, len(self.document.text)))
        if position:
            start, end = self._sentences[position - 1]
            if start <= span.start < end:
                return replace(span, sentence=self.document.text[start:end])
        return span

    def locate(self, value: str) -> list[Span]:
        """Spans of ``value`` in the document, in order; [] when it is not there. Exact
        matches first, then normalised ones elsewhere (a merged value keeps the spans of
        every spelling it was merged from: "ZnO" and later "zno").

        A match must start at a word boundary and must not run on into a letter ("Er"
        matches in "Er3+" but "N" matches neither in "NaYF4" nor in "NDIR"). Normalised
        (case-folded) matches need a full word boundary and at least three characters, so
        that "B" never matches in "by".
        """
        value = value.strip()
        if not value:
            return []
        text = self.document.text
        spans = self._find(text, value, "exact", lambda s, e: (s, e), _exact_boundary)
        if len(spans) == MAX_SPANS_PER_VALUE or len(value) < MIN_NORMALISED_CHARS:
            return spans
        if self._normalised is None:
            self._normalised = NormalisedText(text)
        needle = normalise(value)
        if not needle:
            return spans
        others = self._find(self._normalised.text, needle, "normalised",
                            self._normalised.to_source, _word_boundary)
        spans += [s for s in others if all(s.end <= x.start or s.start >= x.end for x in spans)]
        return sorted(spans, key=lambda s: s.start)[:MAX_SPANS_PER_VALUE]

    def _find(self, haystack: str, needle: str, kind: str, to_source: Any,
              accept: Any) -> list[Span]:
        spans = []
        position = haystack.find(needle)
        while position != -1 and len(spans) < MAX_SPANS_PER_VALUE:
            if accept(haystack, position, position + len(needle)):
                start, end = to_source(position, position + len(needle))
                spans.append(Span(start, end, self.document.page_of(start),
                                  self.document.text[start:end], kind))
            position = haystack.find(needle, position + 1)
        return spans


def _neighbours(text: str, start: int, end: int) -> tuple[str, str]:
    return (text[start - 1] if start > 0 else " ", text[end] if end < len(text) else " ")


def _exact_boundary(text: str, start: int, end: int) -> bool:
    """Starts a word and is not followed by a letter (digits and charges may follow)."""
    before, after = _neighbours(text, start, end)
    starts_word = not before.isalnum() or not text[start].isalnum()
    return starts_word and not (after.isalpha() and text[end - 1].isalnum())


def _word_boundary(text: str, start: int, end: int) -> bool:
    before, after = _neighbours(text, start, end)
    return not before.isalnum() and not after.isalnum()


def drop_ungrounded(value: Any, grounder: Grounder) -> Any:
    """Strict mode: remove every string the source does not contain.

    Strings in lists are removed; scalar strings become ""; an object inside a list that lost
    a scalar (a link to a dropped host, say) is removed whole, since it no longer means anything.
    """
    def clean(node: Any) -> tuple[Any, bool]:  # (cleaned node, lost a scalar string)
        if isinstance(node, str):
            return (node, False) if not node.strip() or grounder.locate(node) else ("", True)
        if isinstance(node, dict):
            cleaned, lost = {}, False
            for key, item in node.items():
                cleaned[key], item_lost = clean(item)
                lost = lost or (item_lost and isinstance(item, str))
            return cleaned, lost
        if isinstance(node, list):
            kept = []
            for item in node:
                cleaned_item, item_lost = clean(item)
                if isinstance(item, str) and cleaned_item == "":
                    continue
                if isinstance(item, dict) and item_lost:
                    continue
                kept.append(cleaned_item)
            return kept, False
        return node, False

    return clean(value)[0]
