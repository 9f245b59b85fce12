"""The source text as HTML, each extracted value marked at its evidence span.

Pure: typed evidence in (``extraction.types.Evidence``), an HTML string out. Every piece
of document text and every value is escaped: a paper may contain ``<script>`` or ``&lt;``
and must show as written. Overlapping spans are cut into segments at every span edge, so
marks never nest or cross.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from extraction.types import Evidence, FieldPath

# Background colours per field name; alpha keeps the text readable in light and dark themes.
PALETTE = ("rgba(255, 193, 7, 0.45)", "rgba(33, 150, 243, 0.35)", "rgba(76, 175, 80, 0.40)",
           "rgba(233, 30, 99, 0.32)", "rgba(156, 39, 176, 0.32)", "rgba(0, 188, 212, 0.38)",
           "rgba(255, 87, 34, 0.38)", "rgba(121, 85, 72, 0.35)")

STYLE = """<style>
.mx-doc { white-space: pre-wrap; line-height: 1.65; font-size: 0.95rem;
  max-height: 34rem; overflow-y: auto; padding: 0.6rem 0.8rem;
  border: 1px solid rgba(128, 128, 128, 0.35); border-radius: 0.4rem; }
.mx-mark { border-radius: 0.2rem; padding: 0 0.1rem; color: inherit; }
.mx-dim { opacity: 0.45; }
.mx-focus { outline: 2px solid rgba(220, 53, 69, 0.85); font-weight: 600; }
.mx-page { display: block; text-align: center; font-size: 0.75rem; opacity: 0.6;
  border-top: 1px dashed rgba(128, 128, 128, 0.6); margin: 0.4rem 0; }
.mx-legend span, .mx-missing span { display: inline-block; margin: 0.1rem 0.3rem 0.1rem 0;
  padding: 0 0.35rem; border-radius: 0.2rem; font-size: 0.85rem; }
.mx-miss { border: 1px dashed rgba(220, 53, 69, 0.9); text-decoration: line-through; }
</style>"""

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


def colours(fields: Iterable[str]) -> dict[str, str]:
    """A stable colour per field name, in order of first appearance."""
    ordered = list(dict.fromkeys(fields))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}


def render(text: str, marks: Sequence[Mark], *, focus: int | None = None,
           pages: Sequence[tuple[int, int]] = (), field_colours: Mapping[str, str] | None = None,
           missing: Sequence[Evidence] = ()) -> str:
    """HTML of ``text`` with every mark highlighted.

    ``focus``: a record number whose marks stand out (others are dimmed); ``pages``: (start,
    end) per page, shown as page rules; ``missing``: ungrounded values, listed under the text
    as struck-through chips.
    """
    field_colours = dict(field_colours or colours(m.field for m in marks))
    page_starts = {start: number for number, (start, _) in enumerate(pages, start=1)
                   if number > 1 and 0 < start <= len(text)}
    cuts = sorted({0, len(text), *page_starts,
                   *(m.start for m in marks if m.start < len(text)),
                   *(min(m.end, len(text)) for m in marks)})
    parts = [STYLE, '<div class="mx-doc" data-testid="mx-document">']
    for start, end in zip(cuts, cuts[1:]):
        if start in page_starts:
            parts.append(f'<span class="mx-page">page {page_starts[start]}</span>')
        piece = html.escape(text[start:end], quote=False)
        covering = [m for m in marks if m.start <= start and m.end >= end]
        if not covering:
            parts.append(piece)
            continue
        parts.append(_mark(piece, covering, focus, field_colours))
    parts.append("</div>")
    if missing:
        chips = "".join(
            f'<span class="mx-miss" data-path="{html.escape(str(item.where))}" '
            f'title="{html.escape(str(item.where))}: not found in the source">'
            f'{html.escape(item.value, quote=False)}</span> '
            f'<small>({html.escape(item.where.field)})</small>' for item in missing)
        parts.append(f'<div class="mx-missing">Not found in the source: {chips}</div>')
    return "".join(parts)


def _mark(piece: str, covering: Sequence[Mark], focus: int | None,
          field_colours: Mapping[str, str]) -> str:
    # The focused record's mark wins the colour; then the shortest (most specific) span.
    top = min(covering, key=lambda m: (m.record != focus, m.end - m.start, m.where))
    focused = focus is not None and any(m.record == focus for m in covering)
    state = " mx-focus" if focused else (" mx-dim" if focus is not None else "")
    title = "; ".join(f"{m.where} = {m.value!r} ({m.match}" + (f", page {m.page})" if m.page
                                                                else ")") for m in covering)
    colour = field_colours.get(top.field, PALETTE[0])
    return (f'<mark class="mx-mark{state}" style="background: {colour}" '
            f'data-path="{html.escape(str(top.where))}" data-field="{html.escape(top.field)}" '
            f'title="{html.escape(title)}">{piece}</mark>')


def legend(field_colours: Mapping[str, str]) -> str:
    chips = "".join(f'<span style="background: {colour}">{html.escape(name)}</span>'
                    for name, colour in field_colours.items())
    return f'{STYLE}<div class="mx-legend">{chips}</div>' if chips else ""
