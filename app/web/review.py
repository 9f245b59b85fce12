"""Reviewing records and values. Pure (no Streamlit), so it is tested without a page.

Records: one editor value per field, validation with errors per field (an edited record's
evidence comes from ``Grounder.evidence``, as the pipeline's does). Each top-level field of a
schema gets one editor kind: a line of text, a number, a checkbox, one list item per line, a
table for a list of flat objects (one row per item), or JSON for anything else nested.

Values: the review queue (lowest confidence first), accepting a value and correcting it; a
reviewed value's path is kept in ``DocumentResult.reviewed`` and its confidence becomes 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from app.web.state import DocumentResult
from extraction.checking.grounding import Grounder
from extraction.schemas.base import SchemaSpec
from extraction.types import Evidence, FieldPath

RECORD_LEVEL = "(record)"  # key for problems that name no field
ITEM_SEPARATOR = ";"  # between the items of a list inside one table cell
_CELL_KINDS = ("text", "integer", "number", "bool", "lines")


@dataclass(frozen=True)
class FieldSpec:
    """How one top-level field is edited."""

    name: str
    kind: str  # "text" | "integer" | "number" | "bool" | "lines" | "table" | "json"
    nullable: bool = False
    description: str = ""
    # "table": a list of flat objects, one row per item; (column, kind of its cells)
    columns: tuple[tuple[str, str], ...] = ()

    @property
    def help(self) -> str:
        how = {"lines": "one item per line", "json": "JSON", "integer": "a whole number",
               "number": "a number",
               "table": f"one row per entry; list cells: items separated by '{ITEM_SEPARATOR}'"
               }.get(self.kind, "")
        return "; ".join(part for part in (self.description, how) if part)


@dataclass
class Checked:
    """An edited record: the validated value, or what is wrong with each field."""

    record: dict[str, Any] | None
    errors: dict[str, list[str]] = field(default_factory=dict)  # make the record invalid
    problems: dict[str, list[str]] = field(default_factory=dict)  # cross-field checks: warnings

    @property
    def valid(self) -> bool:
        return self.record is not None


def field_specs(spec: SchemaSpec) -> list[FieldSpec]:
    """One editor per top-level property of the schema's pydantic model, in schema order."""
    schema = spec.model.model_json_schema()
    defs = schema.get("$defs", {})
    fields = []
    for name, prop in schema.get("properties", {}).items():
        prop = _deref(prop, defs)
        options = [_deref(p, defs) for p in prop.get("anyOf", [prop])]
        nullable = any(p.get("type") == "null" for p in options)
        options = [p for p in options if p.get("type") != "null"] or [{}]
        kind = _kind(options[0], defs) if len(options) == 1 else "json"
        columns = _columns(options[0], defs) if kind == "json" and len(options) == 1 else ()
        fields.append(FieldSpec(name, "table" if columns else kind, nullable,
                                str(prop.get("description", "")), columns))
    return fields


def _columns(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The columns of an array of flat objects (every property a scalar or a list of
    strings), else () and the field stays a JSON editor."""
    if prop.get("type") != "array":
        return ()
    items = _deref(prop.get("items", {}), defs)
    properties = items.get("properties") if items.get("type") == "object" else None
    if not properties:
        return ()
    columns = []
    for name, node in properties.items():
        node = _deref(node, defs)
        branches = [b for b in node.get("anyOf", [node]) if b.get("type") != "null"]
        kind = _kind(_deref(branches[0], defs), defs) if len(branches) == 1 else "json"
        if kind not in _CELL_KINDS:
            return ()
        columns.append((name, kind))
    return tuple(columns)


def _deref(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return {**defs[ref.split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return dict(node)


def _kind(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    kind = prop.get("type")
    if kind == "string" and "enum" not in prop:
        return "text"
    if kind in ("integer", "number"):
        return kind
    if kind == "boolean":
        return "bool"
    if kind == "array" and _deref(prop.get("items", {}), defs).get("type") == "string":
        return "lines"
    return "json"


def to_editor(spec: FieldSpec, value: Any) -> Any:
    """The editor's initial content for a field value."""
    if spec.kind == "bool":
        return bool(value)
    if value is None:
        return ""
    if spec.kind == "lines":
        return "\n".join(str(item) for item in value)
    if spec.kind == "json":
        return json.dumps(value, indent=1, ensure_ascii=False)
    if spec.kind == "table":
        import pandas as pd

        rows = [{name: _to_cell(kind, item.get(name)) for name, kind in spec.columns}
                for item in value if isinstance(item, Mapping)]
        return pd.DataFrame(rows, columns=[name for name, _ in spec.columns])
    return str(value)


def _to_cell(kind: str, value: Any) -> Any:
    if kind == "lines":
        return f"{ITEM_SEPARATOR} ".join(str(item) for item in value or [])
    if kind == "bool":
        return bool(value)
    return value if kind in ("integer", "number") else ("" if value is None else str(value))


def _from_table(spec: FieldSpec, raw: Any) -> tuple[Any, str | None]:
    """Rows of a table editor (a DataFrame, or a list of row dicts) -> the list of objects;
    rows left wholly empty are dropped (the editor's blank new row)."""
    rows = raw.to_dict("records") if hasattr(raw, "to_dict") else list(raw or [])
    items, problems = [], []
    for number, row in enumerate(rows, start=1):
        item: dict[str, Any] = {}
        for name, kind in spec.columns:
            cell = row.get(name)
            text = "" if cell is None or cell != cell else str(cell).strip()  # NaN != NaN
            if kind == "lines":
                item[name] = [part.strip() for part in text.split(ITEM_SEPARATOR)
                              if part.strip()]
            elif kind == "bool":
                item[name] = bool(cell) if cell == cell and cell is not None else False
            elif kind in ("integer", "number"):
                try:
                    item[name] = None if not text else (int(float(text)) if kind == "integer"
                                                        else float(text))
                except ValueError:
                    problems.append(f"row {number}, {name}: not a number: {text!r}")
            else:
                item[name] = text
        if any(v not in ("", [], None, False) for v in item.values()):
            items.append(item)
    return (None, "; ".join(problems)) if problems else (items, None)


def from_editor(spec: FieldSpec, raw: Any) -> tuple[Any, str | None]:
    """(value, None) or (None, what is wrong) for one editor's content."""
    if spec.kind == "bool":
        return bool(raw), None
    if spec.kind == "table" and not isinstance(raw, str):  # a JSON text is read as JSON
        return _from_table(spec, raw)
    text = "" if raw is None else str(raw)
    if spec.kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()], None
    if spec.kind == "text":
        return (None if spec.nullable and not text.strip() else text), None
    if not text.strip():
        return (None, None) if spec.nullable else (None, "a value is required")
    if spec.kind in ("integer", "number"):
        try:
            return (int(text) if spec.kind == "integer" else float(text)), None
        except ValueError:
            return None, f"not {'a whole number' if spec.kind == 'integer' else 'a number'}: " \
                         f"{text.strip()!r}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"


def check(spec: SchemaSpec, fields: list[FieldSpec], editors: Mapping[str, Any],
          fallback: Mapping[str, Any]) -> Checked:
    """Validate the editors' contents as one record against the schema.

    A field whose editor cannot be parsed keeps its ``fallback`` value while the others are
    validated, so that every field's errors show at once.
    """
    errors: dict[str, list[str]] = {}
    candidate: dict[str, Any] = {}
    for f in fields:
        value, error = from_editor(f, editors.get(f.name))
        if error:
            errors[f.name] = [error]
            candidate[f.name] = fallback.get(f.name)
        else:
            candidate[f.name] = value
    return validate(spec, candidate, unparsable=errors)


def validate(spec: SchemaSpec, candidate: Mapping[str, Any], *,
             unparsable: Mapping[str, list[str]] | None = None) -> Checked:
    """One record against the schema: errors per top-level field make it invalid; the
    schema's cross-field checks are warnings. ``unparsable``: fields whose editor could not
    be read, with their messages (the schema's errors about them are not added)."""
    errors = {name: list(messages) for name, messages in (unparsable or {}).items()}
    try:
        model = spec.model.model_validate(dict(candidate))
    except ValidationError as exc:
        for item in exc.errors():
            loc = [str(part) for part in item.get("loc", ())]
            name = loc[0] if loc else RECORD_LEVEL
            if name in errors:  # already reported as unparsable
                continue
            message = item.get("msg", "invalid").removeprefix("Value error, ")
            errors.setdefault(name, []).append(f"{_path(loc)}: {message}")
        return Checked(None, errors)
    if errors:
        return Checked(None, errors)
    problems: dict[str, list[str]] = {}
    for problem in spec.check(model):
        head = re.match(r"[A-Za-z_]\w*", problem)
        name = head.group() if head and head.group() in candidate else RECORD_LEVEL
        problems.setdefault(name, []).append(problem)
    return Checked(model.model_dump(mode="json"), {}, problems)


def _path(loc: list[str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "record"


# --- reviewing values: the queue, accepting, correcting ----------------------------------


@dataclass(frozen=True)
class QueueItem:
    """A value of a document's results that no person has reviewed yet."""

    result: str  # DocumentResult.key
    document: str  # its name
    evidence: Evidence

    @property
    def key(self) -> str:
        """Unique in the session: result key and field path."""
        return f"{self.result}|{self.evidence.where}"


def review_queue(results: Sequence[DocumentResult]) -> list[QueueItem]:
    """Every value not reviewed yet of the records not rejected, lowest confidence first;
    values without a confidence come after all those with one. Ties: values not found in the
    source first, then document and value order."""
    ranked = []
    for number, result in enumerate(results):
        for order, item in enumerate(result.evidence):
            if str(item.where) in result.reviewed \
                    or result.reviews[item.where.record].status == "rejected":
                continue
            rank = (item.confidence is None, item.confidence or 0.0, item.grounded, number,
                    order)
            ranked.append((rank, QueueItem(result.key, result.name, item)))
    return [item for _, item in sorted(ranked, key=lambda pair: pair[0])]


def accept_value(result: DocumentResult, where: FieldPath) -> bool:
    """A person confirms the value at ``where`` as it is: reviewed, confidence 1. False when
    the record holds no value there (any more)."""
    if not any(item.where == where for item in result.evidence):
        return False
    result.reviewed.add(str(where))
    result.evidence = [replace(item, confidence=1.0) if item.where == where else item
                       for item in result.evidence]
    return True


def correct_value(result: DocumentResult, where: FieldPath, text: str,
                  spec: SchemaSpec) -> Checked:
    """A person's correction of the value at ``where``: put into its record and validated as
    the record editor validates; when valid, stored with its evidence found again, reviewed
    (confidence 1). An item of a list of strings corrected to nothing is removed. The check
    is returned (errors: nothing was stored)."""
    corrected = text.strip()
    current = result.reviews[where.record].current
    checked = validate(spec, replace_value(current, where.path, corrected))
    if checked.valid:
        edit_record(result, where.record, checked.record)
        if any(item.where == where and item.value == corrected for item in result.evidence):
            accept_value(result, where)  # also when the "correction" left the value as it was
    return checked


def replace_value(record: Mapping[str, Any], path: str, text: str) -> dict[str, Any]:
    """A copy of ``record`` with the string at ``path`` (named as ``string_leaves`` names it:
    ``links[1].host``) set to ``text``; an item of a list set to nothing is removed."""
    found = False

    def walk(node: Any, here: str) -> Any:
        nonlocal found
        if isinstance(node, Mapping):
            return {key: walk(value, f"{here}.{key}" if here else key)
                    for key, value in node.items()}
        if isinstance(node, list):
            out = []
            for position, item in enumerate(node):
                inner = f"{here}[{position}]"
                if inner == path and isinstance(item, str) and not text:
                    found = True
                    continue
                out.append(walk(item, inner))
            return out
        if here == path and isinstance(node, str):
            found = True
            return text
        return node

    out = walk(record, "")
    if not found:
        raise KeyError(f"the record holds no text value at {path!r}")
    return out


def edit_record(result: DocumentResult, position: int, record: dict[str, Any]) -> None:
    """Store a person's edit of record ``position``; its values are found in the source again.

    A value the edit left alone keeps its confidence and review, also when it moved (a row
    deleted above it); a changed or added value was written by the person: reviewed,
    confidence 1.
    """
    new = Grounder(result.document).evidence(record, position)
    old = result.evidence_of(position)
    continues: dict[int, Evidence] = {}  # index in new -> the old value it is
    free = list(old)
    for same in (lambda a, b: a.where == b.where, lambda a, b: a.where.field == b.where.field):
        for index, item in enumerate(new):
            if index in continues:
                continue
            match = next((before for before in free
                          if before.value == item.value and same(before, item)), None)
            if match is not None:
                continues[index] = match
                free.remove(match)
    reviewed = {key for key in result.reviewed if _record_of(key) != position}
    evidence = []
    for index, item in enumerate(new):
        before = continues.get(index)
        if before is None:
            evidence.append(replace(item, confidence=1.0))
            reviewed.add(str(item.where))
        else:  # the old evidence (with whatever the confidence was computed from), moved
            evidence.append(replace(before, where=item.where, spans=item.spans))
            if str(before.where) in result.reviewed:
                reviewed.add(str(item.where))
    result.replace_record(position, record, evidence)
    result.reviewed = reviewed


def reset_record(result: DocumentResult, position: int) -> None:
    """Record ``position`` back to the model's output: its evidence, confidence and review."""
    result.replace_record(position, result.reviews[position].original,
                          result.original_evidence_of(position))
    reviewed = {key for key in result.reviewed if _record_of(key) != position}
    result.reviewed = reviewed | {key for key in result.extraction.get("reviewed", [])
                                  if _record_of(key) == position}


def _record_of(key: str) -> int | None:
    try:
        return FieldPath.parse(key).record
    except ValueError:
        return None
