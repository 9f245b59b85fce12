"""Bounds learnt from training data: a gold value longer than its field's string bound (or a
list longer than its item bound) raises that bound, so no annotated example is unusable.

Fine-tuning learns them, stores them in the adapter card, and inference with that adapter
widens the schema the same way (``widened``), so the grammar can produce what was taught.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extraction.schemas.base import DEFAULT_MAX_ITEMS, SchemaSpec, string_bounds
from extraction.schemas.json_model import inline_refs, model_from_json_schema

STRING_STEP = 16  # learnt string bounds are rounded up to a multiple of this (some slack)


@dataclass(frozen=True)
class Bounds:
    """Upper bounds by field path (``samples[].dopant``; ``[]`` for array items)."""

    strings: dict[str, int] = field(default_factory=dict)  # path -> characters
    arrays: dict[str, int] = field(default_factory=dict)  # path -> items

    def __bool__(self) -> bool:
        return bool(self.strings or self.arrays)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {"strings": dict(self.strings), "arrays": dict(self.arrays)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Bounds:
        data = data or {}
        return cls(strings={str(k): int(v) for k, v in data.get("strings", {}).items()},
                   arrays={str(k): int(v) for k, v in data.get("arrays", {}).items()})


def _nodes(schema: dict[str, Any], path: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    """(path, node) for every string and array node of an inlined schema."""
    for branch in schema.get("anyOf") or []:
        if isinstance(branch, dict):
            yield from _nodes(branch, path)
    kind = schema.get("type")
    if kind == "object":
        for key, prop in schema.get("properties", {}).items():
            yield from _nodes(prop, f"{path}.{key}" if path else key)
    elif kind == "array":
        yield path, schema
        if isinstance(schema.get("items"), dict):
            yield from _nodes(schema["items"], f"{path}[]")
    elif kind == "string" and not {"enum", "const"} & schema.keys():
        yield path, schema


def schema_bounds(spec: SchemaSpec) -> Bounds:
    """The bounds the grammar applies today (the schema's own, or our defaults)."""
    strings, arrays = {}, {}
    for path, node in _nodes(inline_refs(spec.json_schema())):
        if node["type"] == "array":
            arrays[path] = int(node.get("maxItems", DEFAULT_MAX_ITEMS))
        else:
            strings[path] = string_bounds(node)[1]
    return Bounds(strings, arrays)


def needed_bounds(spec: SchemaSpec, golds: Iterable[Any]) -> Bounds:
    """The longest string and list per path over ``golds`` (records of ``spec``)."""
    kinds = {path: node["type"] for path, node in _nodes(inline_refs(spec.json_schema()))}
    strings: dict[str, int] = {}
    arrays: dict[str, int] = {}

    def visit(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            if kinds.get(path) == "array":
                arrays[path] = max(arrays.get(path, 0), len(value))
            for item in value:
                visit(item, f"{path}[]")
        elif isinstance(value, str) and kinds.get(path) == "string":
            strings[path] = max(strings.get(path, 0), len(value.strip()))

    for gold in golds:
        visit(gold, "")
    return Bounds(strings, arrays)


def learn_bounds(spec: SchemaSpec, golds: Iterable[Any]) -> Bounds:
    """The bounds to raise so that every gold value fits (empty when all already fit)."""
    current, needed = schema_bounds(spec), needed_bounds(spec, golds)
    return Bounds(
        strings={path: STRING_STEP * math.ceil(length / STRING_STEP)
                 for path, length in needed.strings.items() if length > current.strings[path]},
        arrays={path: count for path, count in needed.arrays.items()
                if count > current.arrays[path]})


def widened(spec: SchemaSpec, bounds: Bounds) -> SchemaSpec:
    """``spec`` with its model rebuilt so that ``bounds`` hold (never lowers a bound)."""
    if not bounds:
        return spec
    schema = inline_refs(spec.model.model_json_schema())
    for path, node in _nodes(schema):
        if node["type"] == "array" and path in bounds.arrays:
            node["maxItems"] = max(bounds.arrays[path],
                                   int(node.get("maxItems", DEFAULT_MAX_ITEMS)))
        elif node["type"] == "string" and path in bounds.strings:
            node["maxLength"] = max(bounds.strings[path], string_bounds(node)[1])
    model = model_from_json_schema(spec.model.__name__, schema, where=f"schema {spec.name!r}")
    return dataclasses.replace(spec, model=model)
