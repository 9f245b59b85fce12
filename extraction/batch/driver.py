"""Options, and the driver that runs a batch on an engine and writes its summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extraction.batch.inputs import Event, Outcome, WorkItem, plan
from extraction.batch.local import default_parse_workers, iter_local
from extraction.batch.output import (
    OutputPaths,
    Resume,
    fingerprint,
    locked,
    open_output,
)
from extraction.confidence.filtering import check_threshold, split_lines
from extraction.documents.folders import walk_folder
from extraction.errors import ConfigError
from extraction.storage.jsonl import Appender, read_jsonl, rewrite_jsonl

from extraction.batch.ray_engine import RayOptions

if TYPE_CHECKING:  # the pipeline imports torch: parse workers must not pay for it
    from extraction.config import ExtractorConfig
    from extraction.models import LoadedModel

ENGINES = ("local", "ray")




# --- options and output paths ---------------------------------------------------------------

@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs (what it extracts is the ExtractorConfig)."""

    include: tuple[str, ...] = field(default=(), metadata={
        "help": "glob patterns on paths relative to the folder; none: every supported file"})
    exclude: tuple[str, ...] = field(default=(), metadata={
        "help": "glob patterns for files or folders to leave out ('*' also crosses '/')"})
    engine: str = field(default="local", metadata={"help": "local | ray"})
    parse_workers: int | None = field(default=None, metadata={
        "help": "local engine: processes that read and parse files ahead of the model "
                "(0: parse in the main process; None: 1 when there are 2+ CPUs)"})
    export: bool = field(default=True, metadata={
        "help": "write a flat CSV (and Parquet when pyarrow is installed) beside the output"})
    min_confidence: float | None = field(default=None, metadata={
        "help": "the CSV/Parquet exports keep values at or above this confidence; the others "
                "go to OUT.review.jsonl (the JSONL output keeps every value: re-run with "
                "another threshold re-exports without extracting again)"})
    ray: RayOptions | None = field(default=None, metadata={"help": "options of the ray engine"})

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine: unknown engine {self.engine!r}",
                              hint=f"choose one of {', '.join(ENGINES)}")
        if self.parse_workers is not None and self.parse_workers < 0:
            raise ConfigError(f"parse_workers: must be 0 or more, not {self.parse_workers}")
        check_threshold(self.min_confidence)


# --- the driver ------------------------------------------------------------------------------

@dataclass
class BatchSummary:
    folder: str
    out: str
    errors_file: str
    engine: str
    fingerprint: str
    documents: int = 0  # distinct documents found in the folder
    already_done: int = 0  # skipped: a line with this configuration exists
    processed: int = 0  # lines written by this run
    records: int = 0  # records in the lines written by this run
    failures: int = 0  # files or documents reported in the errors file
    duplicates: int = 0  # files whose content equals another's (extracted once)
    ignored: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    docs_per_min: float = 0.0
    output_documents: int = 0  # lines in the output file after this run
    output_records: int = 0
    exports: dict[str, str] = field(default_factory=dict)
    review_values: int = 0  # values below --min-confidence, written to the review file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_model(config: ExtractorConfig) -> None:
    from extraction import models

    models.resolve_model_dir(config.model)  # unknown model: fail before walking the folder
    if config.adapter:
        models.resolve_adapter(config.adapter)


def _engine(items: list[WorkItem], config: ExtractorConfig, options: BatchOptions,
            loaded: LoadedModel | None, report: Callable[[Event], None]) -> Iterator[Outcome]:
    if options.engine == "ray":
        from extraction.batch.ray_engine import iter_ray

        return iter_ray(items, config, options=options.ray or RayOptions(), report=report)
    workers = default_parse_workers() if options.parse_workers is None else options.parse_workers
    return iter_local(items, config, parse_workers=workers, loaded=loaded, report=report)


def run_batch(folder: Path, config: ExtractorConfig, *, out: Path,
              options: BatchOptions | None = None, report: Callable[[Event], None] | None = None,
              loaded: LoadedModel | None = None) -> BatchSummary:
    """Extract every document under ``folder`` into ``out`` (JSON Lines), resumably.

    ``report`` receives events (dicts with an "event" key) for progress bars and logs;
    ``loaded`` reuses a model already in memory (local engine)."""
    options = options or BatchOptions()
    emit = report or (lambda event: None)
    started = time.perf_counter()
    folder = Path(folder)
    paths = OutputPaths.for_out(out)
    if not folder.is_dir():
        walk_folder(folder)  # raises the right DocumentError before anything is written
    if config.index_dir:
        raise ConfigError("index_dir: batch does not write to a shared index",
                          hint="leave it unset: long documents get an in-memory index each")
    fp = fingerprint(config)  # also checks the schema
    if loaded is None and not (options.engine == "ray" and options.ray and options.ray.address):
        _check_model(config)
    summary = BatchSummary(folder=str(folder), out=str(paths.out), errors_file=str(paths.errors),
                           engine=options.engine, fingerprint=fp)
    paths.folder.mkdir(parents=True, exist_ok=True)
    with locked(paths):
        resume = open_output(paths, fp)
        summary.repaired = {k: v for k, v in (("torn_lines_dropped", resume.torn),
                                              ("duplicate_lines_dropped", resume.duplicates),
                                              ("moved_to_archive", resume.moved)) if v}
        emit({"event": "start", "folder": str(folder), "out": str(paths.out), "fingerprint": fp,
              "engine": options.engine, "lines_kept": resume.kept, **summary.repaired})
        errors = Appender(paths.errors, truncate=True)  # this run's failures only
        try:
            _run(folder, config, options, paths, resume, summary, errors, loaded, emit)
        finally:
            errors.close()
        summary.seconds = round(time.perf_counter() - started, 3)
        minutes = summary.seconds / 60
        summary.docs_per_min = round(summary.processed / minutes, 2) if minutes else 0.0
        _finish(paths, summary, options)
    emit({"event": "summary", **summary.to_dict()})
    return summary


def _run(folder: Path, config: ExtractorConfig, options: BatchOptions, paths: OutputPaths,
         resume: Resume, summary: BatchSummary, errors: Appender, loaded: LoadedModel | None,
         emit: Callable[[Event], None]) -> None:
    def fail(entry: dict[str, Any]) -> None:
        errors.write(entry)
        summary.failures += 1
        emit({"event": "failure", **entry, "done": progress, "total": len(work.items)})

    progress = 0
    walk = walk_folder(folder, include=options.include, exclude=options.exclude,
                       skip=paths.owns)
    work = plan(walk.files, resume.done)
    summary.ignored = dict(walk.ignored)
    summary.documents, summary.already_done = work.documents, work.already_done
    summary.duplicates = work.duplicates
    for entry in walk.failures + work.failures:
        fail(entry)
    emit({"event": "plan", "files": len(walk.files), "documents": work.documents,
          "already_done": work.already_done, "todo": len(work.items),
          "duplicates": work.duplicates, "failures": summary.failures,
          "ignored": summary.ignored})
    if not work.items:
        return
    output = Appender(paths.out)
    try:
        for outcome in _engine(work.items, config, options, loaded, emit):
            progress += 1
            if outcome.failure is not None:
                for file in [outcome.failure["file"], *outcome.copies]:
                    fail({**outcome.failure, "file": file})
                continue
            line = outcome.line or {}
            if line["sha256"] in resume.done:  # the file changed into a known one meanwhile
                continue
            output.write(line)
            resume.done.add(line["sha256"])
            summary.processed += 1
            summary.records += len(line["records"])
            emit({"event": "document", "source": line["source"], "sha256": line["sha256"],
                  "records": len(line["records"]), "errors": len(line["errors"]),
                  "seconds": line["timings"].get("total_s"), "done": progress,
                  "total": len(work.items)})
    finally:
        output.close()


def _finish(paths: OutputPaths, summary: BatchSummary, options: BatchOptions) -> None:
    from extraction.storage import exports

    lines = read_jsonl(paths.out).rows
    summary.output_documents = len(lines)
    summary.output_records = sum(len(line.get("records", [])) for line in lines)
    shown, review = split_lines(lines, options.min_confidence)
    if options.min_confidence is not None:
        rewrite_jsonl(paths.review, review)
        summary.exports["review"] = str(paths.review)
        summary.review_values = len(review)
    if options.export and lines:
        summary.exports.update(exports.write_exports(shown, csv_path=paths.csv,
                                                     parquet_path=paths.parquet))
