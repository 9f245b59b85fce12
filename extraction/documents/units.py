"""Extraction units: the pieces of text the model reads one at a time.

A model reads best what it was trained on: an adapter trained on single sentences loses
links when given a whole abstract (EVALUATION.md, doping-abstracts). The unit comes from the
adapter's card (``inference.unit``) unless configured; the windows of a document (the whole
text, or what retrieval chose) are split into units of that kind, with exact offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from extraction.documents import chunking
from extraction.types import Window

UNITS = ("whole", "paragraph", "sentence")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")


def split_units(windows: Iterable[Window], unit: str) -> list[Window]:
    """``windows`` cut into units of kind ``unit`` (in order; a window with no sentence or
    paragraph inside stays whole)."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose one of {UNITS}")
    units: list[Window] = []
    for window in windows:
        spans = _spans(window.text, unit)
        units += [Window(window.start + start, window.start + end, window.text[start:end],
                         window.score) for start, end in spans] or [window]
    return units


def _spans(text: str, unit: str) -> list[tuple[int, int]]:
    if unit == "sentence":
        return chunking.sentences(text)
    if unit == "paragraph":
        spans, start = [], 0
        for gap in [*_BLANK_LINES.finditer(text), None]:
            end = gap.start() if gap else len(text)
            piece = text[start:end]
            if piece.strip():
                lead = len(piece) - len(piece.lstrip())
                spans.append((start + lead, start + len(piece.rstrip())))
            start = gap.end() if gap else end
        return spans
    return [(0, len(text))] if text.strip() else []
