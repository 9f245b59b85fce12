"""Accepted records out of the app: JSON, JSONL, CSV, and corrections as training data.

Corrections are lines of the generic JSONL task format (eval/README.md), so the same file
feeds ``matextract eval --task jsonl:FILE`` and ``matextract finetune --task jsonl:FILE``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.web.state import DocumentResult
from extraction.errors import MatextractError
from extraction.schemas import builtin_names
from extraction.storage.jsonl import encode_jsonl, parse_jsonl, rewrite_jsonl


class CorrectionsError(MatextractError):
    """Corrections cannot be saved to the chosen file."""

    hint = "choose another file (one schema per corrections file)"


def accepted_items(results: Sequence[DocumentResult]) -> list[dict[str, Any]]:
    """Every accepted record with where it came from, its evidence, the confidence of its
    values and the values a person reviewed (paths inside the record, as in ``evidence``)."""
    items = []
    for result in results:
        for position, review in enumerate(result.reviews):
            if review.status != "accepted":
                continue
            evidence = result.evidence_of(position)
            items.append({
                "source": result.name, "sha256": result.document.sha256,
                "schema": result.extraction.get("schema"), "model": result.extraction.get("model"),
                "record_index": position, "edited": review.edited, "record": review.current,
                "evidence": {item.where.path: [span.to_dict() for span in item.spans]
                             for item in evidence if item.grounded},
                "ungrounded": [item.where.path for item in evidence if not item.grounded],
                "confidence": {item.where.path: item.confidence for item in evidence
                               if item.confidence is not None},
                "reviewed": [item.where.path for item in evidence
                             if str(item.where) in result.reviewed]})
    return items


def to_json(items: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(items), indent=2, ensure_ascii=False) + "\n"


def to_jsonl(items: Sequence[dict[str, Any]]) -> str:
    return encode_jsonl(items).decode("utf-8")


def to_csv(items: Sequence[dict[str, Any]]) -> str:
    """One row per record; a list of strings is joined with "; ", anything nested is JSON;
    ``reviewed``: the paths of the values a person reviewed."""
    fields = list(dict.fromkeys(k for item in items for k in item["record"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["source", "record_index", "edited", "reviewed", *fields])
    for item in items:
        writer.writerow([item["source"], item["record_index"], item["edited"],
                         _cell(item.get("reviewed", [])),
                         *(_cell(item["record"].get(name)) for name in fields)])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "; ".join(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


# --- corrections as training data -------------------------------------------------------------

def correction_lines(results: Sequence[DocumentResult], schema: str) -> list[dict[str, Any]]:
    """One task line per accepted record: the text its model read (the retrieval window, or
    the whole short document) and the reviewed record as gold. Rejected records are left out:
    a rejection says "wrong", not what is right."""
    lines = []
    for result in results:
        windows = result.record_windows()
        for position, review in enumerate(result.reviews):
            if review.status != "accepted":
                continue
            start, end = windows[position]
            lines.append({"id": f"{result.document.sha256[:16]}:{start}-{end}",
                          "text": result.document.text[start:end], "gold": review.current,
                          "schema": schema, "source": result.name,
                          "edited": review.edited})
    return lines


def schema_reference(schema_ref: str) -> tuple[str, Path | None]:
    """(name to write in each line, schema file to copy beside the JSONL or None)."""
    if schema_ref in builtin_names():
        return schema_ref, None
    path = Path(schema_ref)
    return path.name, path


def save_corrections(path: Path, lines: Sequence[dict[str, Any]], *,
                     schema_file: Path | None = None) -> int:
    """Merge ``lines`` into the task file at ``path`` (same id: replaced) and check the result
    with the task loader that eval and finetune use. Returns the number of examples."""
    from eval.tasks import TaskError, load_jsonl_task

    if not lines:
        raise CorrectionsError("no accepted records to save", hint="accept a record first")
    schema = lines[0]["schema"]
    existing: dict[str, dict[str, Any]] = {}
    for saved in parse_jsonl(path.read_bytes()) if path.exists() else []:
        if not saved.parsed:
            raise CorrectionsError(f"{path}:{saved.number}: not valid JSON ({saved.error})")
        row = saved.row or {}
        if row.get("schema") != schema:
            raise CorrectionsError(f"{path} holds corrections for schema "
                                   f"{row.get('schema')!r}, not {schema!r}")
        existing[str(row.get("id", f"line{saved.number}"))] = row
    for line in lines:
        existing[line["id"]] = dict(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    if schema_file is not None and (path.parent / schema_file.name).resolve() \
            != schema_file.resolve():
        shutil.copyfile(schema_file, path.parent / schema_file.name)
    count = 0

    def check(staged: Path) -> None:  # a bad line never lands in the training data
        nonlocal count
        try:
            count = len(load_jsonl_task(staged).examples)
        except TaskError as exc:
            raise CorrectionsError(exc.message.replace(str(staged), str(path)),
                                   hint=exc.hint) from exc

    rewrite_jsonl(path, existing.values(), check=check)
    return count
