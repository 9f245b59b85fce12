"""Durable JSON Lines: the one place that reads, appends and rewrites ``.jsonl`` files.

A writer appends one line at a time (flushed and fsynced), so a kill can only cut the last
line short; readers skip what does not parse and say how much they skipped, and a file is
repaired by rewriting it all-or-nothing. Batch output, evaluation results and the app's
corrections all go through here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from extraction.storage.fileio import fsync_folder, write_atomic


@dataclass(frozen=True)
class JsonlLine:
    """One non-blank line of a file, as written and as parsed."""

    number: int  # 1-based, blank lines counted: what an editor shows
    raw: bytes  # without its newline; written back unchanged by rewrite_jsonl
    value: Any = None  # the parsed JSON (any type); None also when it did not parse
    parsed: bool = False
    error: str | None = None  # why it did not parse
    ended: bool = True  # a newline follows; only a last line cut short by a kill lacks one

    @property
    def row(self) -> dict[str, Any] | None:
        """The line's JSON object, None for anything else."""
        return self.value if self.parsed and isinstance(self.value, dict) else None

    @property
    def torn(self) -> bool:
        """Cut short by a kill: the unfinished last line (a cut JSON object never parses)."""
        return not self.parsed and not self.ended


class JsonlContents(NamedTuple):
    rows: list[dict[str, Any]]  # complete JSON objects, in file order
    skipped: int  # lines that are torn, not JSON, not an object, or lack a required key


def parse_jsonl(data: bytes) -> list[JsonlLine]:
    """Every non-blank line of ``data``, parsed where it parses."""
    segments = data.split(b"\n")
    lines = []
    for number, raw in enumerate(segments, start=1):
        if not raw.strip():
            continue
        ended = number < len(segments)
        try:
            lines.append(JsonlLine(number, raw, json.loads(raw), parsed=True, ended=ended))
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            lines.append(JsonlLine(number, raw, error=reason, ended=ended))
    return lines


def read_jsonl(path: Path, *, required: Collection[str] = ()) -> JsonlContents:
    """The JSON objects of ``path`` (none if it does not exist) that have every ``required``
    key, and how many other lines were skipped."""
    if not path.exists():
        return JsonlContents([], 0)
    rows, skipped = [], 0
    for line in parse_jsonl(path.read_bytes()):
        row = line.row
        if row is not None and all(key in row for key in required):
            rows.append(row)
        else:
            skipped += 1
    return JsonlContents(rows, skipped)


def encode_jsonl(rows: Iterable[Mapping[str, Any] | JsonlLine]) -> bytes:
    """One UTF-8 line per row; a JsonlLine read from a file keeps its bytes."""
    return b"".join((row.raw if isinstance(row, JsonlLine) else
                     json.dumps(row, ensure_ascii=False).encode("utf-8")) + b"\n"
                    for row in rows)


def rewrite_jsonl(path: Path, rows: Iterable[Mapping[str, Any] | JsonlLine], *,
                  check: Callable[[Path], None] | None = None) -> None:
    """Replace ``path`` with ``rows``, all or nothing (bytes and name fsynced). ``check`` sees
    the complete new file before it replaces the old one; if it raises, nothing changes."""
    data = encode_jsonl(rows)

    def write(staged: Path) -> None:
        staged.write_bytes(data)
        if check is not None:
            check(staged)

    write_atomic(path, writer=write)


class Appender:
    """Append JSON lines durably: one write, flush and fsync per line, so a kill loses at
    most the line being written (cut short, and dropped by the next reader)."""

    def __init__(self, path: Path, *, truncate: bool = False) -> None:
        created = truncate or not path.exists()
        self.handle = path.open("wb" if truncate else "ab")
        if created:
            fsync_folder(path.parent)  # the file's name must survive a crash too
        self.lines = 0

    def write(self, row: Mapping[str, Any]) -> None:
        self.handle.write(encode_jsonl([row]))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.lines += 1

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
