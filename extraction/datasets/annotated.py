"""Annotated texts: the unit both evaluation and fine-tuning read, and the user's own JSONL
format (one ``{"id", "text", "gold", "schema"}`` object per line; eval/README.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from extraction.datasets.conversion import merge_records
from extraction.errors import MatextractError
from extraction.schemas import builtin_names, get_schema
from extraction.schemas.bounds import schema_bounds

MAX_REPORTED_PROBLEMS = 20
# A user's examples that training would leave out, or whose gold a run's schema cannot
# produce in eval: over this share stops the command unless the user accepts it.
MAX_EXCLUDED_SHARE = 0.02


class TaskError(MatextractError):
    """An unknown task name, or a task file with bad lines."""

    hint = ("tasks: doping | general:K | mof:K (K = 0..4) | doping-abstracts | jsonl:PATH | "
            "heldout:ADAPTER | heldout-abstracts:ADAPTER (see eval/README.md)")



def _resolve_schema(schema: str, folder: Path) -> str:
    if schema in builtin_names() or ":" in schema or Path(schema).exists():
        return schema
    beside = folder / schema
    return str(beside) if beside.exists() else schema


# Upper bounds in our schemas keep decoding finite; gold may exceed them (NERRE has lists of
# 11 guest species and 90-character formulas), so they do not make a gold record invalid.
_TOLERATED = frozenset({"too_long", "string_too_long"})


def _gold_problems(spec: Any, gold: Any) -> list[str]:
    records = gold if isinstance(gold, list) else [gold]
    if not records or not all(isinstance(r, dict) for r in records):
        return ["gold must be a record (JSON object) or a list of records"]
    problems = []
    for position, record in enumerate(records):
        try:
            spec.model.model_validate(record)
        except ValidationError as exc:
            where = f"gold[{position}]" if isinstance(gold, list) else "gold"
            problems += [f"{where}.{'.'.join(map(str, err['loc']))}: {err['msg']}"
                         for err in exc.errors() if err["type"] not in _TOLERATED]
    return problems


@dataclass(frozen=True)
class AnnotatedText:
    """One annotated text; ``gold`` is in our schema's record format."""

    id: str
    text: str
    gold: dict[str, Any]


@dataclass(frozen=True)
class AnnotatedFile:
    """A validated annotated JSONL file: its schema (resolved beside the file) and texts."""

    schema: str  # ExtractorConfig.schema_name: a built-in name, a JSON Schema path, mod:Class
    examples: tuple[AnnotatedText, ...]


def read_annotated_jsonl(path: Path) -> AnnotatedFile:
    """Read and validate an annotated JSONL file; every bad line is reported as
    ``file:line: problem``, all of them at once."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read the task file ({exc})") from exc
    problems: list[str] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}:{number}: a line must be a JSON object")
            continue
        missing = [k for k in ("text", "gold", "schema") if k not in row]
        if missing:
            problems.append(f"{path}:{number}: missing {', '.join(missing)}")
        elif not isinstance(row["text"], str) or not row["text"].strip():
            problems.append(f"{path}:{number}: text must be a non-empty string")
        else:
            rows.append((number, row))
    schemas = sorted({str(row["schema"]) for _, row in rows})
    if len(schemas) > 1:
        problems.append(f"{path}: every line needs the same schema, found {', '.join(schemas)}")
    spec = schema = None
    if len(schemas) == 1:
        schema = _resolve_schema(schemas[0], path.parent)
        try:
            spec = get_schema(schema)
        except MatextractError as exc:
            problems.append(f"{path}: schema {schemas[0]!r}: {exc.message}")
        else:
            if not schema_bounds(spec).strings:
                problems.append(f"{path}: schema {schemas[0]!r} has no string field: there is "
                                "no text value to extract, link to evidence or learn from")
                spec = None
    examples: list[AnnotatedText] = []
    seen: set[str] = set()
    for number, row in rows:
        example_id = str(row.get("id", f"line{number}"))
        if example_id in seen:
            problems.append(f"{path}:{number}: duplicate id {example_id!r}")
        seen.add(example_id)
        if spec is None:
            continue
        bad = _gold_problems(spec, row["gold"])
        problems += [f"{path}:{number}: {p}" for p in bad]
        if not bad:
            gold = row["gold"] if isinstance(row["gold"], dict) else merge_records(row["gold"])
            examples.append(AnnotatedText(example_id, row["text"], gold or {}))
    if not problems and not rows:
        problems.append(f"{path}: no examples (one JSON object per line)")
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise TaskError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(shown)
                        + (f"\n  ... and {more} more" if more else ""),
                        hint='each line: {"id": "...", "text": "...", "gold": {...}, '
                             '"schema": "doping"}; see eval/README.md')
    assert spec is not None and schema is not None
    return AnnotatedFile(schema, tuple(examples))
