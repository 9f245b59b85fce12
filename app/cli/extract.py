"""``matextract extract``: documents -> records with evidence, printed or written as JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.options import config_command
from extraction.config import ExtractorConfig
from extraction.documents import loading
from extraction.confidence.filtering import check_threshold, split_lines
from extraction.errors import ConfigError, DocumentError
from extraction.retrieval.indexing import find_index
from extraction.storage.jsonl import rewrite_jsonl


@config_command(command="extract", config=ExtractorConfig)
def extract_command(
    config: ExtractorConfig,
    files: Annotated[list[Path], typer.Argument(
        help="documents: .txt .md .html .pdf .json .jsonl")],
    out: Annotated[Path | None, typer.Option(help="write JSON Lines here (atomically)")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        help="--out keeps values at or above this confidence (0-1); the others go to "
             "OUT.review.jsonl beside it, one line each with their evidence")] = None,
) -> None:
    """Extract schema records with evidence from documents; prints JSON."""
    from extraction.pipeline import Extractor  # loads torch: after the options are checked

    check_threshold(min_confidence)
    if min_confidence is not None and out is None:
        raise ConfigError("--min-confidence needs --out",
                          hint="the values below it are written beside --out, to review")

    documents = []
    for file in files:  # read everything first: a bad file fails before any model work
        documents.extend(loading.load(file))
    if config.index_dir is not None:
        if not (Path(config.index_dir) / "index.json").exists():
            raise DocumentError(Path(config.index_dir), "no index here",
                                hint="build one: matextract index build DIR")
    else:
        nearest = find_index(files[0])
        config = config.model_copy(update={"index_dir": str(nearest) if nearest else None})
    results = [result.to_dict() for result in Extractor(config).extract_many(documents)]
    if out is not None:
        shown, review = split_lines(results, min_confidence)
        if min_confidence is not None:
            review_path = out.with_name(f"{out.stem}.review.jsonl")
            rewrite_jsonl(review_path, review)
            typer.echo(f"wrote {len(review)} value(s) below {min_confidence} to {review_path}",
                       err=True)
        rewrite_jsonl(out, shown)
        typer.echo(f"wrote {len(results)} record(s) to {out}", err=True)
    else:
        typer.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2,
                              ensure_ascii=False))
