"""Flat tables of batch output: one row per extracted value, with its confidence and its
first evidence span.

A lab wants "one table of every dopant/host/MOF, with evidence": the JSON Lines output keeps
the nested records; these exports flatten them. CSV always; Parquet when pyarrow is importable
(it comes with the ``ray`` extra). Both are written all-or-nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from extraction.schemas.base import scalar_leaves, without_positions

COLUMNS = (
    "source", "sha256", "schema", "model", "adapter", "record", "field", "path", "value",
    "confidence", "reviewed", "grounded", "evidence_count", "evidence_start", "evidence_end", "evidence_page",
    "evidence_text", "evidence_match", "evidence_sentence", "document_errors",
)
_INT_COLUMNS = {"record", "evidence_count", "evidence_start", "evidence_end", "evidence_page"}
_BOOL_COLUMNS = {"grounded", "reviewed"}


def flat_rows(lines: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One row per extracted value; a document without any value still gets one row."""
    for line in lines:
        model = line.get("model") or {}
        base = {"source": line.get("source"), "sha256": line.get("sha256"),
                "schema": (line.get("schema") or {}).get("name"), "model": model.get("name"),
                "adapter": model.get("adapter"),
                "document_errors": "; ".join(line.get("errors") or []) or None}
        evidence = line.get("evidence") or {}
        confidence = line.get("confidence") or {}
        reviewed = set(line.get("reviewed") or [])
        emitted = False
        for position, record in enumerate(line.get("records") or []):
            for path, value in scalar_leaves(record):
                key = f"records[{position}].{path}"
                spans = evidence.get(key) or []
                first = spans[0] if spans else {}
                yield {**base, "record": position, "field": without_positions(path),
                       "path": path,
                       "value": value if isinstance(value, str) else json.dumps(value),
                       "confidence": confidence.get(key), "reviewed": key in reviewed,
                       "grounded": bool(spans), "evidence_count": len(spans),
                       "evidence_start": first.get("start"), "evidence_end": first.get("end"),
                       "evidence_page": first.get("page"), "evidence_text": first.get("text"),
                       "evidence_match": first.get("match"),
                       "evidence_sentence": first.get("sentence")}
                emitted = True
        if not emitted:
            yield {**base, **{c: None for c in COLUMNS if c not in base}}


def write_csv(rows: Iterable[dict[str, Any]], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    from extraction.storage.fileio import write_atomic

    write_atomic(path, buffer.getvalue().encode("utf-8"))


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.int64() if c in _INT_COLUMNS else
                         pa.bool_() if c in _BOOL_COLUMNS else
                         pa.float64() if c == "confidence" else pa.string()) for c in COLUMNS])
    from extraction.storage.fileio import write_atomic

    table = pa.Table.from_pylist([{c: row.get(c) for c in COLUMNS} for row in rows],
                                 schema=schema)
    write_atomic(path, b"", writer=lambda tmp: pq.write_table(table, tmp))


def write_exports(lines: Iterable[dict[str, Any]], *, csv_path: Path,
                  parquet_path: Path | None = None) -> dict[str, str]:
    """Write the CSV (and the Parquet file if pyarrow is there); returns format -> path."""
    rows = list(flat_rows(lines))
    write_csv(rows, csv_path)
    written = {"csv": str(csv_path)}
    if parquet_path is not None and parquet_available():
        write_parquet(rows, parquet_path)
        written["parquet"] = str(parquet_path)
    return written
