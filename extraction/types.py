"""Plain data passed between pipeline steps and returned to callers: documents, chunks, and
typed results (``Extraction`` with its ``Evidence``: where each value was found, as
``Span``s). No behaviour beyond small helpers; the JSON record format is made here
(``Extraction.to_dict``) and read back here (``Extraction.from_dict``), nowhere else."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from extraction.schemas.base import string_leaves

OUTPUT_FORMAT_VERSION = "1"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """The text of one input unit, with where it came from.

    ``pages`` holds (start, end) character ranges of ``text``, one per page (a single range
    for formats without pages). Offsets everywhere in matextract index into ``text``.
    ``sha256`` is the hash of the source file's bytes (or of the text for in-memory input),
    so a renamed file is still recognised.
    """

    text: str
    source: str
    sha256: str
    pages: tuple[tuple[int, int], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>", **metadata: Any) -> Document:
        return cls(text=text, source=source, sha256=sha256_text(text),
                   pages=((0, len(text)),), metadata=dict(metadata))

    def page_of(self, offset: int) -> int | None:
        """1-based page number that holds character ``offset`` (None if unknown)."""
        for number, (start, end) in enumerate(self.pages, start=1):
            if start <= offset < end or (offset == end == len(self.text)):
                return number
        return None


@dataclass(frozen=True)
class Chunk:
    """A slice ``document.text[start:end]`` used for embedding and retrieval."""

    text: str
    start: int
    end: int
    page: int | None
    doc_sha256: str
    source: str
    index: int  # position of the chunk within its document


@dataclass(frozen=True)
class Window:
    """A contiguous slice ``document.text[start:end]`` the model reads as one unit."""

    start: int
    end: int
    text: str
    score: float  # best retrieved-chunk similarity inside it (1.0 without retrieval)


# --- results ---------------------------------------------------------------------------------

_FIELD_KEY = re.compile(r"records\[(\d+)\]\.(.+)")
_LAST_NAME = re.compile(r"([A-Za-z_][\w-]*)(?:\[\d+\])*$")


@dataclass(frozen=True, order=True)
class FieldPath:
    """Where a value sits in a document's output: record number and path inside the record
    (``links[1].host``, as ``schemas.base.scalar_leaves`` walks a record). In the JSON
    format it is the key ``records[0].links[1].host``."""

    record: int
    path: str

    def __str__(self) -> str:
        return f"records[{self.record}].{self.path}"

    @classmethod
    def parse(cls, key: str) -> FieldPath:
        found = _FIELD_KEY.fullmatch(key)
        if found is None:
            raise ValueError(f"not a field path: {key!r} (expected records[N].field...)")
        return cls(int(found.group(1)), found.group(2))

    @property
    def field(self) -> str:
        """The innermost field name: ``materials[1].formula`` -> ``formula``."""
        found = _LAST_NAME.search(self.path.rsplit(".", 1)[-1])
        return found.group(1) if found else self.path


@dataclass(frozen=True)
class Span:
    """One occurrence of a value in the document: ``document.text[start:end]``."""

    start: int
    end: int
    page: int | None
    text: str
    match: Literal["exact", "normalised"]
    sentence: str | None = None  # the sentence holding the span, when one does

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.sentence is None:
            del out["sentence"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        return cls(int(data["start"]), int(data["end"]), data.get("page"),
                   str(data.get("text", "")), data.get("match", "exact"), data.get("sentence"))


@dataclass(frozen=True)
class Evidence:
    """A string value of the output, every place it was found (none: ungrounded), and how
    likely it is to be right (``confidence`` in [0, 1], see ``extraction.confidence``; None
    when the run recorded none, e.g. an output of an older version)."""

    where: FieldPath
    value: str
    spans: tuple[Span, ...] = ()
    confidence: float | None = None
    # What the confidence was computed from (``confidence.signals``); kept in memory for
    # evaluation and calibration, not written to the JSON record.
    features: Mapping[str, float] | None = field(default=None, compare=False)

    @property
    def grounded(self) -> bool:
        return bool(self.spans)


@dataclass
class Extraction:
    """The result for one document; ``to_dict`` gives its JSON record (README, DESIGN.md)."""

    source: str
    sha256: str
    schema: dict[str, str]
    model: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)  # every string value, in order
    trace: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Field paths a person accepted or corrected (the web UI's review); their confidence is 1.
    reviewed: list[str] = field(default_factory=list)

    def evidence_of(self, record: int) -> list[Evidence]:
        return [item for item in self.evidence if item.where.record == record]

    @property
    def ungrounded(self) -> list[FieldPath]:
        return [item.where for item in self.evidence if not item.grounded]

    def to_dict(self) -> dict[str, Any]:
        return {"format": OUTPUT_FORMAT_VERSION, "source": self.source, "sha256": self.sha256,
                "schema": self.schema, "model": self.model, "records": self.records,
                "evidence": evidence_map(self.evidence),
                "confidence": confidence_map(self.evidence),
                "ungrounded": [str(where) for where in self.ungrounded],
                "reviewed": self.reviewed,
                "trace": self.trace, "timings": self.timings, "errors": self.errors}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Extraction:
        """An output record read back (e.g. a results file opened in the web UI)."""
        return cls(source=data["source"], sha256=data["sha256"], schema=dict(data["schema"]),
                   model=dict(data["model"]), records=list(data.get("records", [])),
                   evidence=evidence_list(data.get("records", []), data.get("evidence", {}),
                                          data.get("confidence")),
                   trace=list(data.get("trace", [])), timings=dict(data.get("timings", {})),
                   errors=list(data.get("errors", [])), reviewed=list(data.get("reviewed", [])))


def evidence_map(items: Iterable[Evidence]) -> dict[str, list[dict[str, Any]]]:
    """Evidence as the JSON format holds it: field path key -> spans (grounded values only)."""
    return {str(item.where): [span.to_dict() for span in item.spans]
            for item in items if item.grounded}


def confidence_map(items: Iterable[Evidence]) -> dict[str, float]:
    """Confidence as the JSON format holds it: field path key -> [0, 1] (values that have one)."""
    return {str(item.where): item.confidence for item in items if item.confidence is not None}


def evidence_list(records: list[dict[str, Any]],
                  evidence: Mapping[str, list[Mapping[str, Any]]],
                  confidence: Mapping[str, float] | None = None) -> list[Evidence]:
    """The JSON format's evidence and confidence maps back as typed evidence of every string
    value of ``records`` (values without an evidence key are ungrounded)."""
    confidence = confidence or {}
    return [Evidence(where, value, tuple(Span.from_dict(s) for s in
                                         evidence.get(str(where), [])),
                     confidence.get(str(where)))
            for position, record in enumerate(records)
            for path, value in string_leaves(record)
            for where in [FieldPath(position, path)]]
