"""Planning the work (which documents are new) and turning work items into outcomes. The
folder is walked by ``extraction.documents.folders.walk_folder``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extraction.documents import loading as documents
from extraction.documents.folders import failure, stat_problem
from extraction.errors import DocumentError, MatextractError
from extraction.storage.fileio import sha256_file
from extraction.types import Document

if TYPE_CHECKING:  # the pipeline imports torch: parse workers must not pay for it
    from extraction.pipeline import Extractor
    from extraction.types import Extraction

COLLECTION_SUFFIXES = (".json", ".jsonl")  # one file, many documents: split while planning
Event = dict[str, Any]


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
            reason, hint = stat_problem(exc)
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


