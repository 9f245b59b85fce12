"""``matextract show``: a results file as one self-contained HTML report (app.report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.report.html_report import PAGE_SIZE, build_report, totals
from app.report.inputs import read_results, with_texts
from extraction.errors import ConfigError
from extraction.storage.fileio import write_atomic

MAX_WARNINGS = 5  # per kind of problem; the rest are counted


def show_command(
    results: Annotated[Path, typer.Argument(help="a .jsonl written by extract --out or batch")],
    out: Annotated[Path | None, typer.Option(
        help="the HTML file to write (atomically); default: RESULTS with .html")] = None,
    sources: Annotated[Path | None, typer.Option(
        help="also look for the source documents in this folder (by file name)")] = None,
    page_size: Annotated[int, typer.Option(help="documents per page of the report")] = PAGE_SIZE,
) -> None:
    """Write RESULTS as one HTML page that opens from disk: each document's text with its
    values marked by confidence, beside the record."""
    out = out or results.with_suffix(".html")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist",
                          hint="create it first, or write the report somewhere else")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory", hint="name the .html file to write")
    if sources is not None and not sources.is_dir():
        raise ConfigError(f"--sources {sources}: not a folder",
                          hint="pass the folder that holds the source documents")
    if page_size < 1:
        raise ConfigError(f"--page-size {page_size}: must be at least 1")

    def warn(line: str) -> None:
        typer.echo(f"warning: {line}", err=True)

    documents = with_texts(read_results(results, warn=warn), results_path=results,
                           sources_dir=sources)
    missing = [doc for doc in documents if doc.text is None]
    for doc in missing[:MAX_WARNINGS]:
        warn(str(doc.notice))
    if len(missing) > MAX_WARNINGS:
        warn(f"... and {len(missing) - MAX_WARNINGS} more document(s) without their text")
    write_atomic(out, build_report(documents, title=f"matextract: {results.name}",
                                   origin=str(results), page_size=page_size))
    typer.echo(f"wrote {out}: {totals(documents).line()}")
