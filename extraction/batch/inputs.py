"""Walking the input folder and planning the work: which documents are new."""

from __future__ import annotations

import errno
import fnmatch
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extraction.documents import loading as documents
from extraction.errors import DocumentError, MatextractError
from extraction.storage.fileio import sha256_file
from extraction.types import Document

if TYPE_CHECKING:  # the pipeline imports torch: parse workers must not pay for it
    from extraction.pipeline import Extraction, Extractor

COLLECTION_SUFFIXES = (".json", ".jsonl")  # one file, many documents: split while planning
SKIP_DIRS = {".matextract-index", ".git", "__pycache__"}
Event = dict[str, Any]




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


def extract_items(extractor: Extractor, parsed: list[tuple[WorkItem, list[Document]]],
                  fingerprint_: str) -> list[Outcome]:
    """Extract several items' documents together (first answers decoded as one batch); if
    the group fails, it is redone one document at a time so that only the bad one fails."""
    documents = [doc for _, docs in parsed for doc in docs]
    if len(documents) > 1:
        try:
            extractions = iter(extractor.extract_group(documents))
        except MatextractError:
            pass  # which document? extract_item below finds it
        else:
            return [_extracted(item, next(extractions), fingerprint_)
                    for item, docs in parsed for _ in docs]
    return [o for item, docs in parsed for o in extract_item(extractor, item, docs,
                                                              fingerprint_)]


def extract_item(extractor: Extractor, item: WorkItem, docs: list[Document],
                 fingerprint_: str) -> list[Outcome]:
    """Extract the item's documents. A MatextractError (e.g. a generation budget exhausted) is
    this document's failure; anything else is a bug or a broken setup and stops the run."""
    outcomes = []
    for doc in docs:
        try:
            extraction = extractor.extract(doc)
        except MatextractError as exc:
            outcomes.append(Outcome(item.sha256, copies=item.copies, failure=failure(
                doc.source, exc.message, exc.hint, stage="extract")))
            continue
        outcomes.append(_extracted(item, extraction, fingerprint_))
    return outcomes


def _extracted(item: WorkItem, extraction: Extraction, fingerprint_: str) -> Outcome:
    line = extraction.to_dict()
    line["fingerprint"] = fingerprint_
    return Outcome(item.sha256, line=line)


