"""Durable JSON Lines: reading past torn and foreign lines, fsynced appends, atomic rewrites."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from extraction.storage import jsonl
from extraction.storage.jsonl import Appender, parse_jsonl, read_jsonl, rewrite_jsonl


def test_a_missing_file_reads_as_empty(tmp_path):
    assert read_jsonl(tmp_path / "none.jsonl") == ([], 0)


def test_a_torn_last_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "out.jsonl"
    whole = json.dumps({"id": "b", "text": "ZnO"})
    path.write_text('{"id": "a"}\n' + whole[: len(whole) // 2])  # a kill mid-write
    rows, skipped = read_jsonl(path)
    assert rows == [{"id": "a"}] and skipped == 1
    last = parse_jsonl(path.read_bytes())[-1]
    assert last.torn and not last.ended and last.number == 2 and last.error


def test_only_an_unended_last_line_counts_as_torn():
    lines = parse_jsonl(b'{"a": 1}\nnot json\n\n{"b": 2}')
    assert [(line.number, line.parsed, line.torn) for line in lines] == [
        (1, True, False), (2, False, False), (4, True, False)]  # blank line 3 is no line
    assert lines[2].row == {"b": 2} and not lines[2].ended


@pytest.mark.parametrize("text", ["[1, 2]", '"a string"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_skipped_and_counted(tmp_path, text):
    path = tmp_path / "out.jsonl"
    path.write_text(f'{{"id": 1}}\n{text}\n{{"id": 2}}\n')
    assert read_jsonl(path) == ([{"id": 1}, {"id": 2}], 1)


def test_rows_without_a_required_key_and_bad_bytes_are_counted(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": 1}\n{"other": 2}\n\xff\xfe\n\n{"id": 3}\n')
    assert read_jsonl(path, required=("id",)) == ([{"id": 1}, {"id": 3}], 2)
    assert read_jsonl(path) == ([{"id": 1}, {"other": 2}, {"id": 3}], 1)


def test_every_append_is_flushed_before_it_is_fsynced(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "out.jsonl"
    path.parent.mkdir()
    seen: list[bytes] = []
    folders: list[Path] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append(path.read_bytes())  # what is on its way to the disk at this moment
        real_fsync(fd)

    monkeypatch.setattr(jsonl.os, "fsync", fsync)
    monkeypatch.setattr(jsonl, "fsync_folder", folders.append)
    with Appender(path) as appender:
        appender.write({"id": "a", "text": "Mn-doped ZnO"})
        appender.write({"id": "b", "text": "ünïcödé"})
    first = '{"id": "a", "text": "Mn-doped ZnO"}\n'.encode()
    assert seen == [first, first + '{"id": "b", "text": "ünïcödé"}\n'.encode()]
    assert appender.lines == 2 and appender.handle.closed
    assert folders == [path.parent]  # the new file's name is made durable once

    with Appender(path) as again:  # an existing file: appended to, no folder fsync
        again.write({"id": "c"})
    assert folders == [path.parent]
    assert [r["id"] for r in read_jsonl(path).rows] == ["a", "b", "c"]
    with Appender(path, truncate=True) as fresh:
        fresh.write({"id": "d"})
    assert read_jsonl(path).rows == [{"id": "d"}] and len(folders) == 2


def test_rewrite_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id":1,  "kept": "as written"}\n{"id": 2}\n{"id": 3')
    lines = [line for line in parse_jsonl(path.read_bytes()) if not line.torn]
    rewrite_jsonl(path, [lines[0], {"id": 2, "new": "ü"}])
    assert path.read_bytes() == b'{"id":1,  "kept": "as written"}\n{"id": 2, "new": "\xc3\xbc"}\n'
    assert os.listdir(tmp_path) == ["out.jsonl"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # shared results, not mkstemp's 0600


def test_a_failed_check_changes_nothing(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": 1}\n')
    checked: list[bytes] = []

    def check(staged: Path) -> None:
        checked.append(staged.read_bytes())  # the complete new file, before it replaces
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        rewrite_jsonl(path, [{"id": 2}], check=check)
    assert checked == [b'{"id": 2}\n']
    assert path.read_text() == '{"id": 1}\n' and os.listdir(tmp_path) == ["out.jsonl"]
