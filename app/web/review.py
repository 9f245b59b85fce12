"""Reviewing records: one editor value per field, validation with errors per field (an
edited record's evidence comes from ``Grounder.evidence``, as the pipeline's does). Pure
(no Streamlit), so it is tested without a page.

Each top-level field of a schema gets one editor kind: a line of text, a number, a checkbox,
one list item per line, or JSON for anything nested (lists of objects, objects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from extraction.schemas.base import SchemaSpec

RECORD_LEVEL = "(record)"  # key for problems that name no field


@dataclass(frozen=True)
class FieldSpec:
    """How one top-level field is edited."""

    name: str
    kind: str  # "text" | "integer" | "number" | "bool" | "lines" | "json"
    nullable: bool = False
    description: str = ""

    @property
    def help(self) -> str:
        how = {"lines": "one item per line", "json": "JSON", "integer": "a whole number",
               "number": "a number"}.get(self.kind, "")
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
        fields.append(FieldSpec(name, _kind(options[0], defs) if len(options) == 1 else "json",
                                nullable, str(prop.get("description", ""))))
    return fields


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
    return str(value)


def from_editor(spec: FieldSpec, raw: Any) -> tuple[Any, str | None]:
    """(value, None) or (None, what is wrong) for one editor's content."""
    if spec.kind == "bool":
        return bool(raw), None
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
    try:
        model = spec.model.model_validate(candidate)
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
