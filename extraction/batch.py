"""Batch extraction over a folder: walk, plan, resume, run on an engine, write durably.

A document is done when its output line is on disk: each line is appended, flushed and
fsynced by this process alone, whatever the engine. A line carries the fingerprint of the
configuration that made it; re-running skips documents whose content hash (``sha256``) already
has a line with the current fingerprint. Lines of another configuration are moved to an
archive file beside the output, so the output always holds one configuration, one line per
document. A line torn by a kill is dropped on the next start. Engines (the local one here,
Ray in ``batch_ray``) only turn work items into outcomes and add no extraction logic.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extraction import documents
from extraction.errors import ConfigError, DocumentError, MatextractError
from extraction.fileio import fsync_folder, sha256_file, write_atomic
from extraction.types import Document

if TYPE_CHECKING:  # the pipeline imports torch: parse workers must not pay for it
    from extraction.batch_ray import RayOptions
    from extraction.models import LoadedModel
    from extraction.pipeline import Extractor, ExtractorConfig

ENGINES = ("local", "ray")
COLLECTION_SUFFIXES = (".json", ".jsonl")  # one file, many documents: split while planning
SKIP_DIRS = {".matextract-index", ".git", "__pycache__"}
Event = dict[str, Any]


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
    ray: RayOptions | None = field(default=None, metadata={"help": "options of the ray engine"})

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine: unknown engine {self.engine!r}",
                              hint=f"choose one of {', '.join(ENGINES)}")
        if self.parse_workers is not None and self.parse_workers < 0:
            raise ConfigError(f"parse_workers: must be 0 or more, not {self.parse_workers}")


@dataclass(frozen=True)
class OutputPaths:
    """Every file a batch writes: all of them in the output's own folder."""

    out: Path

    @classmethod
    def for_out(cls, out: Path) -> OutputPaths:
        out = Path(os.path.abspath(out))
        if out.suffix != ".jsonl":
            raise ConfigError(f"{out}: the output must be a .jsonl file",
                              hint="e.g. --out results/doping.jsonl")
        if out.is_dir():
            raise ConfigError(f"{out} is a folder", hint="name a .jsonl file inside it")
        paths = cls(out)
        for path in paths.artefacts():
            if path.is_symlink():  # appending through a link would write outside the folder
                raise ConfigError(f"{path} is a symbolic link; batch writes only real files in "
                                  f"{out.parent}", hint="remove the link or choose another --out")
        return paths

    @property
    def folder(self) -> Path:
        return self.out.parent

    @property
    def errors(self) -> Path:
        return self.folder / f"{self.out.stem}.errors.jsonl"

    @property
    def csv(self) -> Path:
        return self.folder / f"{self.out.stem}.csv"

    @property
    def parquet(self) -> Path:
        return self.folder / f"{self.out.stem}.parquet"

    @property
    def lock(self) -> Path:
        return self.folder / f".{self.out.name}.lock"

    def archive(self, fingerprint: str) -> Path:
        return self.folder / f"{self.out.stem}.previous-{fingerprint}.jsonl"

    def artefacts(self) -> list[Path]:
        return [self.out, self.errors, self.csv, self.parquet, self.lock]

    def owns(self, path: Path) -> bool:
        """True for files this batch writes (never read back as input documents)."""
        if Path(os.path.abspath(path.parent)).resolve() != self.folder.resolve():
            return False
        archive = rf"{re.escape(self.out.stem)}\.previous-[0-9a-f]+\.jsonl"
        return (path.name in {p.name for p in self.artefacts()}
                or re.fullmatch(archive, path.name) is not None)


def fingerprint(config: ExtractorConfig) -> str:
    """What the records depend on: model, adapter, schema (version and JSON Schema) and every
    option set away from its default (so a new option with a default keeps old lines valid)."""
    from extraction.pipeline import OUTPUT_FORMAT_VERSION
    from extraction.schemas import get_schema

    spec = get_schema(config.schema_name)
    schema_json = json.dumps(spec.json_schema(), sort_keys=True)
    identity = {
        "format": OUTPUT_FORMAT_VERSION, "model": config.model, "adapter": config.adapter,
        "schema": {"name": spec.name, "version": spec.version,
                   "json_schema": hashlib.sha256(schema_json.encode()).hexdigest()},
        "options": config.model_dump(mode="json", exclude_defaults=True,
                                     exclude={"model", "adapter", "schema_name"}),
    }
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- walking the folder ---------------------------------------------------------------------

@dataclass
class Walk:
    files: list[tuple[str, str]] = field(default_factory=list)  # (absolute path, display path)
    failures: list[dict[str, Any]] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)  # reason -> count


def failure(file: str, reason: str, hint: str = "", *, stage: str) -> dict[str, Any]:
    return {"file": file, "reason": reason, "hint": hint, "stage": stage}


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        variants = (pattern, pattern[3:]) if pattern.startswith("**/") else (pattern,)
        if any(fnmatch.fnmatchcase(rel, v) or fnmatch.fnmatchcase(name, v) for v in variants):
            return True
    return False


def _stat_problem(exc: OSError) -> tuple[str, str]:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop", "the link points (indirectly) at itself; remove it"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link (target missing)", "remove the link or restore its target"
    if exc.errno == errno.EACCES:
        return "permission denied", "make it readable (chmod u+r) or exclude it"
    return f"cannot read: {exc.strerror or exc}", "check that the disk or share is reachable"


def walk_folder(folder: Path, *, include: Iterable[str] = (), exclude: Iterable[str] = (),
                skip: Callable[[Path], bool] = lambda path: False) -> Walk:
    """Supported files under ``folder``, sorted by relative path. Symbolic links are followed,
    but a folder is entered once: a link back to an enclosing folder is reported as a loop."""
    include, exclude = tuple(include), tuple(exclude)
    if not folder.exists():
        raise DocumentError(folder, "folder not found",
                            hint=f"check the path (relative paths start at {Path.cwd()})")
    if not folder.is_dir():
        raise DocumentError(folder, "is not a folder",
                            hint="pass a folder; for single files use 'matextract extract'")
    walk = Walk()
    root = os.stat(folder)
    stack: list[tuple[Path, str, tuple[tuple[int, int], ...]]] = [
        (folder, "", ((root.st_dev, root.st_ino),))]
    entered = {(root.st_dev, root.st_ino)}
    found: list[tuple[str, str, str]] = []
    while stack:
        directory, rel, ancestry = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            reason, hint = _stat_problem(exc)
            walk.failures.append(failure(str(directory), f"cannot list folder: {reason}", hint,
                                         stage="walk"))
            continue
        for entry in entries:
            path, child_rel = Path(entry.path), f"{rel}{entry.name}"
            try:
                info = os.stat(path)  # follows links; raises for loops and broken links
            except OSError as exc:
                reason, hint = _stat_problem(exc)
                walk.failures.append(failure(str(path), reason, hint, stage="walk"))
                continue
            if os.path.isdir(path):
                identity = (info.st_dev, info.st_ino)
                if entry.name in SKIP_DIRS or _matches(child_rel, exclude):
                    walk.ignored["excluded folder"] += 1
                elif identity in ancestry:
                    walk.failures.append(failure(
                        str(path), "symbolic link loop: leads back to an enclosing folder",
                        "not followed; remove the link or exclude it", stage="walk"))
                elif identity in entered:
                    walk.ignored["folder reached again through a link"] += 1
                else:
                    entered.add(identity)
                    stack.append((path, f"{child_rel}/", (*ancestry, identity)))
                continue
            suffix = path.suffix.lower()
            if skip(path):
                continue
            if suffix not in documents.SUPPORTED_SUFFIXES:
                walk.ignored[f"unsupported {suffix or '(no extension)'}"] += 1
            elif _matches(child_rel, exclude) or (include and not _matches(child_rel, include)):
                walk.ignored["excluded by pattern"] += 1
            elif not os.path.isfile(path):  # a FIFO would block the reader forever
                walk.failures.append(failure(str(path), "not a regular file",
                                             "copy the content into a file", stage="walk"))
            else:
                found.append((child_rel, os.path.abspath(path), str(path)))
    walk.files = [(absolute, display) for _, absolute, display in sorted(found)]
    return walk


# --- planning: what is already done, what to do ---------------------------------------------

@dataclass
class WorkItem:
    """One document to extract: a file to read, or a document already read (an item of a JSON
    collection). ``copies`` are other files with the same content (reported if it fails)."""

    display: str
    sha256: str
    path: str | None = None
    document: Document | None = None
    copies: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        if self.document is not None:
            row["document"]["pages"] = [list(p) for p in self.document.pages]
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> WorkItem:
        doc = row.get("document")
        if doc is not None:
            doc = Document(**{**doc, "pages": tuple(tuple(p) for p in doc["pages"])})
        return cls(**{**row, "document": doc})


@dataclass
class Plan:
    items: list[WorkItem]
    documents: int  # distinct documents found: done before + to do
    already_done: int
    duplicates: int
    failures: list[dict[str, Any]]


def load_file(path: str, display: str) -> list[Document]:
    """``documents.load`` with sources named by ``display`` (the path as the user gave it)."""
    loaded = documents.load(path)
    prefix = str(Path(path))
    return [replace(doc, source=display + doc.source[len(prefix):]) for doc in loaded]


def _load_failure(display: str, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, DocumentError):
        return failure(display, exc.problem, exc.hint, stage="load")
    if isinstance(exc, MatextractError):
        return failure(display, exc.message, exc.hint, stage="load")
    # A parser bug on one odd file must not stop a run of thousands.
    return failure(display, f"cannot parse ({type(exc).__name__}: {exc})",
                   "check the file opens in a viewer; please report it if it does", stage="load")


def plan(files: Iterable[tuple[str, str]], done: set[str]) -> Plan:
    """Work items for every document whose content hash has no line yet. Identical content is
    extracted once. Collections are read here; other files only hashed (cheap)."""
    result = Plan([], 0, 0, 0, [])
    by_sha: dict[str, WorkItem] = {}
    done_seen: set[str] = set()

    def add(item: WorkItem) -> None:
        if item.sha256 in by_sha:
            by_sha[item.sha256].copies.append(item.display)
            result.duplicates += 1
        elif item.sha256 in done:
            result.duplicates += item.sha256 in done_seen
            result.already_done += item.sha256 not in done_seen
            done_seen.add(item.sha256)
        else:
            by_sha[item.sha256] = item
            result.items.append(item)

    for path, display in files:
        if Path(path).suffix.lower() in COLLECTION_SUFFIXES:
            try:
                docs = load_file(path, display)
            except Exception as exc:  # noqa: BLE001 - reported per file, the run goes on
                result.failures.append(_load_failure(display, exc))
                continue
            for doc in docs:
                add(WorkItem(display=doc.source, sha256=doc.sha256, document=doc))
            continue
        try:
            digest = sha256_file(Path(path))
        except OSError as exc:
            reason, hint = _stat_problem(exc)
            result.failures.append(failure(display, reason, hint, stage="load"))
            continue
        add(WorkItem(display=display, sha256=digest, path=path))
    result.documents = result.already_done + len(result.items)
    return result


# --- one work item -> outcomes (shared by every engine) ----------------------------------------

@dataclass
class Outcome:
    """The result of one work item: an output line, or a failure of the item's files."""

    sha256: str
    line: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    copies: list[str] = field(default_factory=list)


def load_item(item: WorkItem) -> tuple[list[Document], Outcome | None]:
    """Read and parse one item (runs in parse workers, Ray actors or inline)."""
    if item.document is not None:
        return [item.document], None
    try:
        return load_file(item.path or item.display, item.display), None
    except Exception as exc:  # noqa: BLE001
        return [], Outcome(item.sha256, failure=_load_failure(item.display, exc),
                           copies=item.copies)


def extract_item(extractor: Extractor, item: WorkItem, docs: list[Document],
                 fingerprint_: str) -> list[Outcome]:
    """Extract the item's documents. A MatextractError (e.g. a generation budget exhausted) is
    this document's failure; anything else is a bug or a broken setup and stops the run."""
    outcomes = []
    for doc in docs:
        try:
            line = extractor.extract(doc).to_dict()
        except MatextractError as exc:
            outcomes.append(Outcome(item.sha256, copies=item.copies, failure=failure(
                doc.source, exc.message, exc.hint, stage="extract")))
            continue
        line["fingerprint"] = fingerprint_
        outcomes.append(Outcome(item.sha256, line=line))
    return outcomes


# --- the local engine ------------------------------------------------------------------------

def _parse_worker_init(parent: int) -> None:
    """Parse workers end when the batch process dies, even by SIGKILL, and keep the parsers'
    warnings ("EOF marker not found") to themselves: failures are reported as such."""
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def default_parse_workers() -> int:
    return 1 if (os.cpu_count() or 1) >= 2 else 0


def _parsed(items: list[WorkItem], workers: int
            ) -> Iterator[tuple[WorkItem, list[Document], Outcome | None]]:
    """Items with their documents, in order; files are parsed ahead in worker processes."""
    if workers == 0 or all(item.document is not None for item in items):
        for item in items:
            yield item, *load_item(item)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold torch threads and a model by now.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_parse_worker_init, initargs=(os.getpid(),))
    pending: deque = deque()
    upcoming = iter(items)
    try:
        while True:
            while len(pending) < 2 * workers + 1:
                item = next(upcoming, None)
                if item is None:
                    break
                pending.append((item, None if item.document is not None
                                else pool.submit(load_item, item)))
            if not pending:
                return
            item, future = pending.popleft()
            try:
                result = load_item(item) if future is None else future.result()
            except Exception:  # noqa: BLE001 - a crashed worker: parse this one here
                result = load_item(item)
            yield item, *result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def iter_local(items: list[WorkItem], config: ExtractorConfig, *, parse_workers: int,
               loaded: LoadedModel | None = None,
               report: Callable[[Event], None] = lambda event: None) -> Iterator[Outcome]:
    """The local engine: one model in this process, files parsed ahead of it."""
    from extraction.pipeline import Extractor

    fp = fingerprint(config)
    extractor = None
    for item, docs, failed in _parsed(items, parse_workers):
        if failed is not None:
            yield failed
            continue
        if extractor is None:  # not before a document needs it: a re-run may retry only
            extractor = Extractor(config, loaded=loaded)  # bad files, and parsing goes on
            report({"event": "model_loaded", "model": extractor.loaded.name,
                    "device": extractor.loaded.device,
                    "seconds": round(extractor.load_seconds, 3)})
        yield from extract_item(extractor, item, docs, fp)


# --- the output file: repair on start, append durably ------------------------------------------

@dataclass
class Resume:
    done: set[str]  # content hashes with a line of the current configuration
    kept: int = 0
    torn: int = 0  # a last line cut short by a kill, dropped
    duplicates: int = 0
    moved: dict[str, int] = field(default_factory=dict)  # archive file -> lines moved there


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    """A batch record, None for a line cut short (a cut JSON object never parses).
    Raises ValueError for other JSON: not a line batch wrote."""
    try:
        row = json.loads(raw)
    except ValueError:
        return None
    if isinstance(row, dict) and isinstance(row.get("sha256"), str) and "fingerprint" in row:
        return row
    raise ValueError("not a batch record")


def open_output(paths: OutputPaths, current: str) -> Resume:
    """Read the output file and repair it in place: drop a torn or duplicate line, move lines
    of another configuration to their archive. Archives are written (merged, deduplicated)
    before the output is rewritten, so a kill in between loses and duplicates nothing."""
    resume = Resume(done=set())
    if not paths.out.exists():
        return resume
    data = paths.out.read_bytes()
    kept: list[bytes] = []
    stale: dict[str, list[bytes]] = {}
    segments = data.split(b"\n")
    for number, raw in enumerate(segments, start=1):
        if not raw.strip():
            continue
        try:
            row = _parse_line(raw)
            cut = row is None and number == len(segments)  # last, no newline: a kill
        except ValueError:  # JSON, but not ours
            row, cut = None, False
        if cut:
            resume.torn += 1
        elif row is None:  # one appender, so only the last line can be torn: not our file
            raise ConfigError(f"{paths.out} line {number} is not a batch record; refusing to "
                              "rewrite a file that batch did not write",
                              hint="choose another --out (a new .jsonl file)")
        elif row["fingerprint"] != current:
            stale.setdefault(str(row["fingerprint"]), []).append(raw)
        elif row["sha256"] in resume.done:
            resume.duplicates += 1
        else:
            resume.done.add(row["sha256"])
            kept.append(raw)
    resume.kept = len(kept)
    for old, lines in stale.items():
        archive = paths.archive(re.sub(r"[^0-9a-f]", "", old)[:16] or "unknown")
        previous = archive.read_bytes().split(b"\n") if archive.exists() else []
        merged = {}
        for raw in previous:
            try:
                merged[json.loads(raw)["sha256"]] = raw
            except (ValueError, KeyError, TypeError):  # a blank or cut line of an old run
                continue
        merged.update({json.loads(r)["sha256"]: r for r in lines})
        write_atomic(archive, b"".join(r + b"\n" for r in merged.values()))
        resume.moved[str(archive)] = len(lines)
    clean = b"".join(raw + b"\n" for raw in kept)
    if clean != data:
        write_atomic(paths.out, clean)
    return resume


class Appender:
    """Append JSON lines durably: one write, flush and fsync per line."""

    def __init__(self, path: Path, *, truncate: bool = False) -> None:
        created = truncate or not path.exists()
        self.handle = path.open("wb" if truncate else "ab")
        if created:
            fsync_folder(path.parent)  # the file's name must survive a crash too
        self.lines = 0

    def write(self, row: dict[str, Any]) -> None:
        self.handle.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.lines += 1

    def close(self) -> None:
        self.handle.close()


@contextmanager
def locked(paths: OutputPaths) -> Iterator[None]:
    """One batch per output file at a time (the lock dies with its process)."""
    handle = paths.lock.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another batch is writing {paths.out}",
                              hint="wait for it to finish, or use another --out") from None
        yield
    finally:
        handle.close()


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
        from extraction.batch_ray import RayOptions, iter_ray

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
    from extraction import exports

    lines = list(exports.read_lines(paths.out)) if paths.out.exists() else []
    summary.output_documents = len(lines)
    summary.output_records = sum(len(line.get("records", [])) for line in lines)
    if options.export and lines:
        summary.exports = exports.write_exports(lines, csv_path=paths.csv,
                                                parquet_path=paths.parquet)
