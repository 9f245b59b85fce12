"""The source text as HTML, each extracted value marked at its evidence span.

Pure: typed evidence in (``extraction.types.Evidence``), an HTML string out. Given the
values' confidence, each mark also shows its band (``extraction.confidence.levels``). Every piece
of document text and every value is escaped: a paper may contain ``<script>`` or ``&lt;``
and must show as written. Overlapping spans are cut into segments at every span edge, so
marks never nest or cross.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Iterable, Mapping, Sequence

from app.marking import Mark, marked_html, marks_from_evidence
from extraction.confidence.levels import COLOURS, HIGH, LOW, Level, level
from extraction.types import Evidence

__all__ = ["Mark", "PALETTE", "band_legend", "colours", "confidence_text", "legend",
           "marks_from_evidence", "render", "value_chip"]

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
.mx-chip { display: inline-block; padding: 0.05rem 0.45rem; border-radius: 0.25rem;
  color: #1f1f1f; font-weight: 600; }
""" + f""".mx-low {{ border-bottom: 3px solid {COLOURS["low"]}; }}
.mx-medium {{ border-bottom: 2px dotted {COLOURS["medium"]}; }}
</style>"""  # low and medium values underlined in their band's colour

def colours(fields: Iterable[str]) -> dict[str, str]:
    """A stable colour per field name, in order of first appearance."""
    ordered = list(dict.fromkeys(fields))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}


def render(text: str, marks: Sequence[Mark], *, focus: int | None = None,
           pages: Sequence[tuple[int, int]] = (), field_colours: Mapping[str, str] | None = None,
           missing: Sequence[Evidence] = (), confidence: Mapping[str, float | None] | None = None,
           reviewed: Collection[str] = (), by_confidence: bool = False) -> str:
    """HTML of ``text`` with every mark highlighted.

    ``focus``: a record number whose marks stand out (others are dimmed); ``pages``: (start,
    end) per page, shown as page rules; ``missing``: ungrounded values, listed under the text
    as struck-through chips. ``confidence``: field path key -> confidence (the JSON format's
    map); when given, marks and chips carry their band as a class (``mx-low``: underlined in
    the band's colour) and their confidence in the tooltip. ``reviewed``: keys a person
    reviewed (named in the tooltip). ``by_confidence``: the background is the band's colour
    instead of the field's.
    """
    field_colours = dict(field_colours or colours(m.field for m in marks))
    bands = None if confidence is None else _Bands(confidence, frozenset(reviewed),
                                                   by_confidence)
    parts = [STYLE, '<div class="mx-doc" data-testid="mx-document">',
             marked_html(text, marks, lambda escaped, covering: _mark(
                 escaped, covering, focus, field_colours, bands), pages=pages),
             "</div>"]
    if missing:
        chips = "".join(
            f'<span class="mx-miss{bands.css(str(item.where)) if bands else ""}" '
            f'data-path="{html.escape(str(item.where))}" '
            f'title="{html.escape(str(item.where))}: not found in the source'
            f'{html.escape(bands.note(str(item.where))) if bands else ""}">'
            f'{html.escape(item.value, quote=False)}</span> '
            f'<small>({html.escape(item.where.field)})</small>' for item in missing)
        parts.append(f'<div class="mx-missing">Not found in the source: {chips}</div>')
    return "".join(parts)


class _Bands:
    """The confidence of the values, as ``render`` shows it."""

    def __init__(self, confidence: Mapping[str, float | None], reviewed: frozenset[str],
                 by_confidence: bool) -> None:
        self.confidence = confidence
        self.reviewed = reviewed
        self.by_confidence = by_confidence

    def band(self, keys: Iterable[str]) -> Level:
        """The band of the least confident of ``keys`` that has a confidence."""
        known = [c for key in keys if (c := self.confidence.get(key)) is not None]
        return level(min(known)) if known else "unknown"

    def css(self, key: str) -> str:
        return f" mx-{self.band([key])}"

    def note(self, key: str) -> str:
        """The tooltip's words on one value (no "; ": it separates the values)."""
        value = self.confidence.get(key)
        said = "no confidence recorded" if value is None else \
            f"{level(value)} confidence {value:.2f}"
        return f", {said}" + (", reviewed" if key in self.reviewed else "")


def _mark(piece: str, covering: Sequence[Mark], focus: int | None,
          field_colours: Mapping[str, str], bands: _Bands | None = None) -> str:
    # The focused record's mark wins the colour; then the shortest (most specific) span.
    top = min(covering, key=lambda m: (m.record != focus, m.end - m.start, m.where))
    focused = focus is not None and any(m.record == focus for m in covering)
    state = " mx-focus" if focused else (" mx-dim" if focus is not None else "")
    title = "; ".join(f"{m.where} = {m.value!r} ({m.match}"
                      + (f", page {m.page}" if m.page else "")
                      + (bands.note(str(m.where)) if bands else "") + ")" for m in covering)
    colour = field_colours.get(top.field, PALETTE[0])
    style, band = f"background: {colour}", ""
    if bands is not None:
        # a low value stays visible under a confident one: the least confident value of the
        # top mark's record gives the band
        own = bands.band(str(m.where) for m in covering if m.record == top.record)
        state += f" mx-{own}"
        band = f' data-band="{own}"'
        if bands.by_confidence:  # light band colours: dark text in a dark theme too
            style = f"background: {COLOURS[own]}; color: #1f1f1f"
    return (f'<mark class="mx-mark{state}" style="{style}" '
            f'data-path="{html.escape(str(top.where))}" data-field="{html.escape(top.field)}"'
            f'{band} title="{html.escape(title)}">{piece}</mark>')


def confidence_text(confidence: float | None) -> str:
    """A confidence as the faces write it: ``0.42 (low)``, or that none was recorded."""
    if confidence is None:
        return "none recorded"
    return f"{confidence:.2f} ({level(confidence)})"


def value_chip(value: str, confidence: float | None) -> str:
    """One value as a chip in its band's colour, its confidence in the tooltip."""
    band = level(confidence)
    return (f'{STYLE}<span class="mx-chip mx-{band}" style="background: {COLOURS[band]}" '
            f'data-band="{band}" title="confidence {html.escape(confidence_text(confidence))}">'
            f'{html.escape(value, quote=False)}</span>')


def legend(field_colours: Mapping[str, str]) -> str:
    chips = "".join(f'<span style="background: {colour}">{html.escape(name)}</span>'
                    for name, colour in field_colours.items())
    return f'{STYLE}<div class="mx-legend">{chips}</div>' if chips else ""


def band_legend() -> str:
    """The confidence bands and their colours, as a legend."""
    names = {"high": f"high ≥ {HIGH:.2f}", "medium": f"medium {LOW:.2f}–{HIGH:.2f}",
             "low": f"low < {LOW:.2f}", "unknown": "no confidence recorded"}
    chips = "".join(f'<span style="background: {COLOURS[band]}">{html.escape(name)}</span>'
                    for band, name in names.items())
    return f'{STYLE}<div class="mx-legend">{chips}</div>'
