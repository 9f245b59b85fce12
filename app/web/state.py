"""What one browser session holds: the running job and the reviewed results. Pure data.

Streamlit re-runs the page script on every click; these objects live in ``st.session_state``
and are mutated in place, so a document finished before a cancel (or any other rerun that
interrupts the loop) is never lost.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from extraction.types import Document, Evidence, evidence_list

STATUSES = ("pending", "accepted", "rejected")


@dataclass
class RecordReview:
    """One extracted record and what the reviewer made of it."""

    original: dict[str, Any]
    current: dict[str, Any]  # the last valid edit (the original until edited)
    status: str = "pending"

    @property
    def edited(self) -> bool:
        return self.current != self.original


@dataclass
class DocumentResult:
    """One document's output record plus its review state: per record (``reviews``) and per
    value (``reviewed``: field path keys a person accepted or corrected, confidence 1)."""

    key: str  # unique within the session
    name: str  # what the user uploaded or chose
    document: Document
    schema_ref: str  # ExtractorConfig.schema_name: built-in name or schema file path
    extraction: dict[str, Any]  # Extraction.to_dict(), as the CLI writes it
    reviews: list[RecordReview] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)  # of the current records
    reviewed: set[str] = field(default_factory=set)  # "records[0].hosts[1]", ...

    @classmethod
    def from_extraction(cls, key: str, name: str, document: Document, schema_ref: str,
                        extraction: dict[str, Any]) -> DocumentResult:
        reviews = [RecordReview(json.loads(json.dumps(r)), json.loads(json.dumps(r)))
                   for r in extraction.get("records", [])]
        result = cls(key, name, document, schema_ref, extraction, reviews)
        result.evidence = result.original_evidence()
        result.reviewed = set(extraction.get("reviewed", []))
        return result

    def original_evidence(self) -> list[Evidence]:
        """The output's own evidence and confidence (a value it says was reviewed: 1.0)."""
        reviewed = set(self.extraction.get("reviewed", []))
        items = evidence_list(self.extraction.get("records", []),
                              self.extraction.get("evidence", {}),
                              self.extraction.get("confidence", {}))
        return [replace(item, confidence=1.0) if str(item.where) in reviewed else item
                for item in items]

    def evidence_of(self, position: int) -> list[Evidence]:
        return [item for item in self.evidence if item.where.record == position]

    def original_evidence_of(self, position: int) -> list[Evidence]:
        """The model's own evidence of a record (what a reset returns to)."""
        return [item for item in self.original_evidence() if item.where.record == position]

    def reviewed_of(self, position: int) -> list[str]:
        """The reviewed field path keys of one record, in the order of its values."""
        return [str(item.where) for item in self.evidence_of(position)
                if str(item.where) in self.reviewed]

    def replace_record(self, position: int, record: dict[str, Any],
                       evidence: list[Evidence]) -> None:
        """Store an edited record with its new evidence (other records keep theirs)."""
        self.reviews[position].current = record
        self.evidence = sorted([item for item in self.evidence if item.where.record != position]
                               + list(evidence), key=lambda item: item.where.record)

    def record_windows(self) -> list[tuple[int, int]]:
        """The (start, end) of the text each record was extracted from, record by record.

        The pipeline appends a record for each window whose best attempt gave one, in order.
        """
        windows = []
        for step in self.extraction.get("trace", []):
            attempts = step.get("attempts", [])
            best = next((a for a in attempts if a.get("number") == step.get("best_attempt")),
                        None)
            if best is not None and best.get("record") is not None:
                windows.append((int(step["window"]["start"]), int(step["window"]["end"])))
        if len(windows) != len(self.reviews):  # unknown layout: the whole text for each
            return [(0, len(self.document.text))] * len(self.reviews)
        return windows


@dataclass
class Job:
    """Documents waiting for the model, the settings they were started with, and results.

    Streamlit may start a new run of the page while an earlier one is still inside the model
    (a click during extraction): documents are claimed under a lock, so no document is read
    twice, and a new job never receives an old job's results.
    """

    pending: list[tuple[str, Document]]  # (display name, document)
    total: int
    config: dict[str, Any]  # ExtractorConfig.model_dump(): options changed mid-run do not apply
    results: list[DocumentResult] = field(default_factory=list)
    done: int = 0
    failed: list[str] = field(default_factory=list)
    cancelled: bool = False
    active: str | None = None  # the document being read now, by this run or an earlier one
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def running(self) -> bool:
        return (bool(self.pending) or self.active is not None) and not self.cancelled

    def claim(self) -> tuple[str, Document] | None:
        """The next document to read, or None when done, cancelled or another run reads one."""
        with self._lock:
            if self.cancelled or not self.pending or self.active is not None:
                return None
            name, document = self.pending.pop(0)
            self.active = name
            return name, document

    def finish(self, name: str, document: Document, extraction: dict[str, Any] | None,
               error: str | None = None) -> DocumentResult | None:
        """Record the claimed document's outcome (kept even when cancelled meanwhile)."""
        with self._lock:
            result = None
            if extraction is not None:
                result = DocumentResult.from_extraction(
                    f"{len(self.results)}:{document.sha256[:8]}", name, document,
                    str(self.config.get("schema_name")), extraction)
                self.results.append(result)
            else:
                self.failed.append(f"{name}: {error or 'interrupted'}")
            self.done += 1
            self.active = None
            return result

    def cancel(self) -> int:
        """Drop the documents not started yet; returns how many."""
        with self._lock:
            dropped = len(self.pending)
            self.pending.clear()
            self.cancelled = True
            return dropped

    def wait_idle(self, *, timeout: float = 900.0, poll: float = 0.2) -> bool:
        """Wait until no run is inside the model for this job; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.active is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True


def summary(record: dict[str, Any], *, width: int = 120) -> str:
    """A one-line view of a record for the results table."""
    parts = []
    for key, value in record.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown = ", ".join(value) or "–"
        elif isinstance(value, (dict, list)):
            shown = json.dumps(value, ensure_ascii=False, separators=(",", ":")) \
                if value else "–"
        else:
            shown = "–" if value in (None, "") else str(value)
        parts.append(f"{key}: {shown}")
    text = "; ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def table_rows(results: list[DocumentResult]) -> list[dict[str, Any]]:
    """One row per record (and one per document without any), for the results table: its
    values found in the source, its lowest confidence (None: none recorded) and how many of
    its values a person reviewed."""
    rows = []
    for result in results:
        if not result.reviews:
            problem = "; ".join(result.extraction.get("errors", [])) or "no record"
            rows.append({"document": result.name, "record": None, "status": "–",
                         "edited": False, "values": problem, "grounded": "–",
                         "lowest confidence": None, "reviewed": "–", "key": result.key})
        for position, review in enumerate(result.reviews):
            items = result.evidence_of(position)
            grounded = sum(item.grounded for item in items)
            known = [item.confidence for item in items if item.confidence is not None]
            reviewed = sum(str(item.where) in result.reviewed for item in items)
            rows.append({"document": result.name, "record": position + 1,
                         "status": review.status, "edited": review.edited,
                         "values": summary(review.current),
                         "grounded": f"{grounded}/{len(items)}",
                         "lowest confidence": min(known) if known else None,
                         "reviewed": f"{reviewed}/{len(items)}", "key": result.key})
    return rows
