"""Results as one self-contained HTML page: each document's text with every value marked
where it was found, coloured by its confidence band, beside the record.

Pure: typed results and document texts in, an HTML string out (``app.report.inputs`` reads
the files). Every piece of text is escaped: papers hold ``<`` and ``&``. Overlapping spans
(a host and the link naming it) are cut into flat pieces (``app.marking``); a piece covered
by several values shows the least confident of them (then the innermost span), so doubt is
never hidden, as in the web UI; its tooltip lists every value it supports.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from app.marking import Mark, marked_html, marks_from_evidence
from app.report.page import page
from extraction.confidence.levels import HIGH, LOW, level
from extraction.types import Evidence, Extraction, FieldPath

PAGE_SIZE = 20  # documents per page of the report
Labeller = Callable[[FieldPath], str]  # how a value's path is named to the reader


@dataclass(frozen=True)
class ReportDocument:
    """One results line and the text its offsets index into (None: not available; the
    evidence sentences are shown instead, under ``notice``)."""

    result: Extraction
    text: str | None = None
    pages: tuple[tuple[int, int], ...] = ()
    notice: str | None = None  # why the text is missing or may not match, shown in the page


@dataclass(frozen=True)
class Totals:
    documents: int
    values: int
    low: int  # values below the low band (extraction.confidence.levels.LOW)
    ungrounded: int
    reviewed: int
    without_text: int  # documents shown with their evidence sentences only

    def line(self) -> str:
        return (f"{self.documents} document(s), {self.values} value(s): {self.low} low "
                f"confidence (< {LOW}), {self.ungrounded} not found in the text, "
                f"{self.reviewed} reviewed; {self.without_text} document(s) without their "
                "source text")


def confidence_of(result: Extraction, item: Evidence) -> float | None:
    """The confidence shown for a value: a value a person reviewed counts as certain."""
    return 1.0 if str(item.where) in result.reviewed else item.confidence


def totals(documents: Sequence[ReportDocument]) -> Totals:
    items = [(doc.result, item) for doc in documents for item in doc.result.evidence]
    return Totals(
        documents=len(documents), values=len(items),
        low=sum(level(confidence_of(result, item)) == "low" for result, item in items),
        ungrounded=sum(not item.grounded for _, item in items),
        reviewed=sum(str(item.where) in result.reviewed for result, item in items),
        without_text=sum(doc.text is None for doc in documents))


def build_report(documents: Sequence[ReportDocument], *, title: str = "matextract results",
                 origin: str = "", page_size: int = PAGE_SIZE) -> str:
    """The report page. ``origin``: where the results came from (shown under the title)."""
    entries = []
    for number, doc in enumerate(documents, start=1):
        values = [confidence_of(doc.result, item) for item in doc.result.evidence]
        known = [value for value in values if value is not None]
        entries.append({"n": number, "source": doc.result.source,
                        "min": min(known) if known else None,
                        "html": render_document(doc, number=number)})
    count = totals(documents)
    summary = (f"{count.documents} documents · {count.values} values · {count.low} low "
               f"confidence · {count.ungrounded} not found in the text · {count.reviewed} "
               "reviewed" + (f" · from {origin}" if origin else ""))
    header = (f"<h1>{html.escape(title)}</h1>\n"
              f'<p class="mx-totals">{html.escape(summary)}</p>\n{legend()}')
    return page(title=title, header=header, documents=entries, page_size=page_size)


def legend() -> str:
    bands = {"high": f"high confidence ≥ {HIGH}", "medium": f"medium {LOW} – {HIGH}",
             "low": f"low < {LOW}", "unknown": "no confidence recorded"}
    chips = "".join(f'<span class="c-{name}">{html.escape(label)}</span>'
                    for name, label in bands.items())
    return (f'<div class="mx-legend">{chips}<span class="mx-miss">✗ not found in the text'
            '</span><span class="mx-rv">✓ reviewed</span></div>')


# --- one document ---------------------------------------------------------------------------

def render_document(doc: ReportDocument, *, number: int = 1) -> str:
    """One document's section: heading, notices and errors, marked text, record."""
    result = doc.result
    by_where = {item.where: item for item in result.evidence}
    label = _labeller(result)
    parts = [f'<section class="mx-doc" data-source="{html.escape(result.source)}">',
             f'<h2><span class="mx-num">#{number}</span>{html.escape(result.source)}</h2>',
             f'<p class="mx-meta">{html.escape(_meta(result))}</p>']
    if doc.notice:
        parts.append(f'<p class="mx-notice">{html.escape(doc.notice)}</p>')
    if result.errors:
        errors = "".join(f"<li>{html.escape(error)}</li>" for error in result.errors)
        parts.append(f'<ul class="mx-errors">{errors}</ul>')
    parts.append('<div class="mx-cols">')
    if doc.text is not None:
        parts.append('<div class="mx-text">'
                     + _marked(doc.text, marks_from_evidence(result.evidence), result=result,
                               by_where=by_where, label=label, pages=doc.pages) + "</div>")
    else:
        parts.append(f'<div class="mx-text">{_excerpts(result, by_where, label)}</div>')
    parts.append(f'<div class="mx-record">{_record(result)}</div></div>')
    if result.records:
        raw = json.dumps(result.records, indent=1, ensure_ascii=False)
        parts.append(f"<details><summary>records as JSON</summary><pre>{html.escape(raw)}"
                     "</pre></details>")
    parts.append("</section>")
    return "".join(parts)


def _marked(text: str, marks: Sequence[Mark], *, result: Extraction,
            by_where: Mapping[FieldPath, Evidence], label: Labeller,
            pages: Sequence[tuple[int, int]] = ()) -> str:
    """``text`` escaped, each piece covered by marks in one ``<mark>``, page rules between
    pages."""
    return marked_html(text, marks, lambda escaped, covering: _mark(
        escaped, covering, result, by_where, label), pages=pages)


def _mark(escaped: str, covering: Sequence[Mark], result: Extraction,
          by_where: Mapping[FieldPath, Evidence], label: Labeller) -> str:
    values = [by_where[where] for where in dict.fromkeys(m.where for m in covering)
              if where in by_where]
    if not values:  # marks that name no value of this result: plain text
        return escaped

    def rank(item: Evidence) -> tuple:
        confidence = confidence_of(result, item)  # unknown after every known one
        span = min(m.end - m.start for m in covering if m.where == item.where)
        return 2.0 if confidence is None else confidence, span, item.where

    top = min(values, key=rank)
    confidence = confidence_of(result, top)
    classes = f"mx c-{level(confidence)}" + (
        " mx-reviewed" if str(top.where) in result.reviewed else "")
    title = "\n".join(_describe(result, item, label) for item in values)
    also = " ".join(str(item.where) for item in values if item is not top)
    return (f'<mark class="{classes}" data-path="{html.escape(str(top.where))}" '
            f'data-confidence="{"" if confidence is None else f"{confidence:g}"}"'
            + (f' data-also="{html.escape(also)}"' if also else "")
            + f' title="{html.escape(title)}">{escaped}</mark>')


def _describe(result: Extraction, item: Evidence, label: Labeller) -> str:
    confidence = confidence_of(result, item)
    said = "no confidence recorded" if confidence is None else f"confidence {confidence:.2f}"
    reviewed = " · reviewed" if str(item.where) in result.reviewed else ""
    return f"{label(item.where)}: {item.value} · {said}{reviewed}"


def _labeller(result: Extraction) -> Labeller:
    """Field paths as a reader names them: ``hosts[0]``, or ``records[1].hosts[0]`` when a
    document has several records."""
    if len(result.records) <= 1:
        return lambda where: where.path
    return str


def _meta(result: Extraction) -> str:
    schema = result.schema.get("name", "?")
    model = result.model.get("name", "?")
    adapter = result.model.get("adapter")
    return (f"schema {schema} · model {model}" + (f" + {adapter}" if adapter else "")
            + f" · {len(result.records)} record(s), {len(result.evidence)} value(s)"
            + f" · sha256 {result.sha256[:12]}")


def _record(result: Extraction) -> str:
    if not result.records:
        return "<p>No record extracted.</p>"
    parts = []
    for position in range(len(result.records)):
        if len(result.records) > 1:
            parts.append(f"<h3>Record {position + 1}</h3>")
        rows = []
        for item in result.evidence_of(position):
            confidence = confidence_of(result, item)
            shown = "–" if confidence is None else f"{confidence:.2f}"
            flags = ("" if item.grounded else
                     '<span class="mx-miss">✗ not found in the text</span> ') + (
                '<span class="mx-rv">✓ reviewed</span>' if str(item.where) in result.reviewed
                else "")
            rows.append(f'<tr data-path="{html.escape(str(item.where))}">'
                        f'<td class="mx-field">{html.escape(item.where.path)}</td>'
                        f"<td>{html.escape(item.value)}</td>"
                        f'<td><span class="mx-conf c-{level(confidence)}">{shown}</span></td>'
                        f"<td>{flags}</td></tr>")
        parts.append(f"<table>{''.join(rows)}</table>" if rows else "<p>No values.</p>")
    return "".join(parts)


def _excerpts(result: Extraction, by_where: Mapping[FieldPath, Evidence],
              label: Labeller) -> str:
    """Without the document text: each evidence sentence (or the span text itself) once, in
    document order, with the values found in it marked."""
    found: dict[str, tuple[int, list[Mark]]] = {}  # excerpt -> (first offset, marks in it)
    for item in result.evidence:
        for span in item.spans:
            excerpt = span.sentence or span.text
            at = excerpt.find(span.text) if span.text else -1
            first, marks = found.setdefault(excerpt, (span.start, []))
            found[excerpt] = (min(first, span.start), marks)
            if at >= 0:
                marks.append(Mark(at, at + len(span.text), item.where, span.text, span.match))
    if not found:
        return "<p>No value was found in the text.</p>"
    ordered = sorted(found.items(), key=lambda entry: entry[1][0])
    return "".join('<p class="mx-excerpt">'
                   + _marked(excerpt, marks, result=result, by_where=by_where, label=label)
                   + "</p>" for excerpt, (_, marks) in ordered)
