"""Evidence spans as flat pieces of text, for every face that highlights values in a document
(the web UI's review page, the HTML report of ``matextract show``).

Pure: spans may overlap (a host and the link that names it share their text), but HTML marks
must never nest or cross, so the text is cut at every span edge and each piece knows every
value covering it. Each face decides how a piece looks.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from extraction.types import Evidence, FieldPath


@dataclass(frozen=True)
class Mark:
    """One evidence span of one value: ``text[start:end]`` supports the value at ``where``."""

    start: int
    end: int
    where: FieldPath
    value: str
    match: str = "exact"
    page: int | None = None

    @property
    def record(self) -> int:
        return self.where.record

    @property
    def field(self) -> str:
        return self.where.field


def marks_from_evidence(evidence: Iterable[Evidence]) -> list[Mark]:
    return [Mark(span.start, span.end, item.where, span.text, span.match, span.page)
            for item in evidence for span in item.spans if span.end > span.start]


@dataclass(frozen=True)
class Piece:
    """``text[start:end]``, covered by ``marks`` (in the order given; none: plain text)."""

    start: int
    end: int
    marks: tuple[Mark, ...]


def pieces(length: int, marks: Sequence[Mark], *, cuts: Iterable[int] = ()) -> Iterator[Piece]:
    """The text ``[0, length)`` cut at every mark edge and at ``cuts`` (e.g. page starts).

    A sweep over the marks sorted by start, so a long paper with many values costs
    O((pieces + marks) * overlap), not pieces * marks.
    """
    edges = sorted({0, length, *cuts, *(m.start for m in marks if m.start < length),
                    *(min(m.end, length) for m in marks)})
    order = sorted(range(len(marks)), key=lambda i: marks[i].start)
    waiting = 0  # marks[order[waiting:]] start after the current piece
    active: list[int] = []
    for start, end in zip(edges, edges[1:]):
        while waiting < len(order) and marks[order[waiting]].start <= start:
            active.append(order[waiting])
            waiting += 1
        active = [i for i in active if marks[i].end >= end]  # ends only grow: drop for good
        yield Piece(start, end, tuple(marks[i] for i in sorted(active)))


def marked_html(text: str, marks: Sequence[Mark], mark: Callable[[str, tuple[Mark, ...]], str],
                *, pages: Sequence[tuple[int, int]] = ()) -> str:
    """``text`` escaped, each piece covered by marks rendered by ``mark(escaped, marks)``,
    with a page rule where each page after the first starts."""
    page_starts = {start: number for number, (start, _) in enumerate(pages, start=1)
                   if number > 1 and 0 < start <= len(text)}
    parts = []
    for piece in pieces(len(text), marks, cuts=page_starts):
        if piece.start in page_starts:
            parts.append(f'<span class="mx-page">page {page_starts[piece.start]}</span>')
        escaped = html.escape(text[piece.start:piece.end], quote=False)
        parts.append(mark(escaped, piece.marks) if piece.marks else escaped)
    return "".join(parts)
