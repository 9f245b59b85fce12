"""A pydantic model from a JSON Schema (the common subset: objects, arrays, strings, numbers,
booleans, enums, ``$defs`` references and ``anyOf`` with null).

Used for users' JSON Schema files and to rebuild any schema with widened bounds (a bound
learnt from training data must also hold when the answer is validated).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from extraction.errors import SchemaError
from extraction.schemas.base import (DEFAULT_MAX_ITEMS, DEFAULT_MAX_STRING, EXTRACTIVE_KEY,
                                     IGNORE_CASE)

_SCALARS: dict[str, Any] = {"integer": int, "number": float, "boolean": bool}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with every ``#/$defs/...`` reference replaced by its definition
    (our schemas are not recursive), without ``$defs``."""
    defs = schema.get("$defs", {})

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.split("/")[-1]
            if name in seen or name not in defs:
                raise SchemaError(f"schema reference {ref!r} is recursive or undefined")
            merged = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items()
                                                      if k != "$ref"}}
            return resolve(merged, seen | {name})
        return {key: resolve(value, seen) for key, value in node.items() if key != "$defs"}

    return resolve(schema, frozenset())


def model_from_json_schema(name: str, schema: dict[str, Any], *, where: str) -> type[BaseModel]:
    """The pydantic model of an object schema; ``where`` names it in error messages."""
    schema = inline_refs(schema)
    return _object_model(name, schema, where=where, extra=marker(schema, where))


def _object_model(name: str, schema: dict[str, Any], *, where: str,
                  extra: dict[str, Any] | None = None) -> type[BaseModel]:
    required = set(schema.get("required", schema["properties"].keys()))
    fields: dict[str, Any] = {}
    for key, prop in schema["properties"].items():
        if not isinstance(prop, dict):
            raise SchemaError(f"{where}: property {key!r} must be an object")
        here = f"{where}: property {key!r}"
        annotation = _annotation(f"{name}_{key}", prop, where=here)
        options = {"description": prop.get("description"),
                   "json_schema_extra": marker(prop, here)}
        if key in required:
            fields[key] = (annotation, Field(**options))
        elif "default" in prop and prop["default"] is not None:
            fields[key] = (annotation, Field(default=prop["default"], **options))
        else:
            fields[key] = (Optional[annotation], Field(default=None, **options))
    return create_model(_class_name(name),
                        __config__=ConfigDict(extra="forbid", json_schema_extra=extra), **fields)


def marker(node: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The node's ``x-extractive`` marker, kept for the generated model's JSON Schema."""
    if EXTRACTIVE_KEY not in node:
        return None
    value = node[EXTRACTIVE_KEY]
    if not (isinstance(value, bool) or value == IGNORE_CASE):
        raise SchemaError(f"{where}: {EXTRACTIVE_KEY} must be true, false or {IGNORE_CASE!r}",
                          hint=f'e.g. "{EXTRACTIVE_KEY}": true on a string copied from the text')
    return {EXTRACTIVE_KEY: value}


def _annotation(name: str, prop: dict[str, Any], *, where: str) -> Any:
    branches = prop.get("anyOf")
    if isinstance(branches, list):  # Optional[X] as pydantic writes it
        kept = [b for b in branches if isinstance(b, dict) and b.get("type") != "null"]
        if len(kept) != 1:
            raise SchemaError(f"{where}: anyOf is supported only as 'X or null'")
        inner = _annotation(name, {**prop, **kept[0], "anyOf": None}, where=where)
        return Optional[inner] if len(kept) < len(branches) else inner
    kind = prop.get("type")
    if "enum" in prop:
        return Literal[tuple(prop["enum"])]  # type: ignore[misc]
    if "const" in prop:
        return Literal[prop["const"]]  # type: ignore[misc]
    if kind == "string":
        return Annotated[str, StringConstraints(
            strip_whitespace=True, min_length=prop.get("minLength"),
            max_length=prop.get("maxLength", DEFAULT_MAX_STRING), pattern=prop.get("pattern"))]
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        items = prop.get("items")
        if not isinstance(items, dict):
            raise SchemaError(f"{where}: an array needs an 'items' schema")
        inner = _annotation(f"{name}_item", items, where=where)
        item_marker = marker(items, f"{where} items")
        if item_marker:
            inner = Annotated[inner, Field(json_schema_extra=item_marker)]
        return Annotated[list[inner], Field(min_length=prop.get("minItems"),
                                            max_length=prop.get("maxItems", DEFAULT_MAX_ITEMS))]
    if kind == "object" and isinstance(prop.get("properties"), dict):
        return _object_model(name, prop, where=where)
    raise SchemaError(f"{where}: unsupported type {kind!r}",
                      hint="supported: object, array, string, integer, number, boolean, enum")


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in str(name).replace("-", "_").split("_")) or "Record"
