"""User schemas: a JSON Schema file, or a pydantic class given as ``module:Class``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from extraction.errors import SchemaError
from extraction.schemas.base import (DEFAULT_MAX_ITEMS, DEFAULT_MAX_STRING, EXTRACTIVE_KEY,
                                     IGNORE_CASE, SchemaSpec)

_SCALARS: dict[str, Any] = {"integer": int, "number": float, "boolean": bool}


def from_json_schema_file(path: Path) -> SchemaSpec:
    """Build a pydantic model from the common subset of JSON Schema (objects, arrays, scalars)."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})",
                          hint="a schema file must be a JSON Schema object") from exc
    if not isinstance(schema, dict) or schema.get("type") != "object" \
            or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        raise SchemaError(f"{path}: the root must be an object schema with 'properties'",
                          hint='e.g. {"type": "object", "properties": {"alloy": {"type": '
                               '"string"}}}')
    name = schema.get("title") or path.stem
    model = _object_model(name, schema, where=str(path), extra=_marker(schema, str(path)))
    instructions = schema.get("description") or f"Extract {name} from the text."
    return SchemaSpec(name=path.stem, version=str(schema.get("version", "1")), model=model,
                      instructions=instructions, origin=str(path))


def from_import_path(target: str) -> SchemaSpec:
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        model = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise SchemaError(f"cannot import schema {target!r}: {exc}",
                          hint="use module.path:ClassName with the module on PYTHONPATH") from exc
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise SchemaError(f"{target!r} is not a pydantic BaseModel subclass")
    doc = (model.__doc__ or "").strip()
    return SchemaSpec(name=class_name.lower(), version="1", model=model,
                      instructions=doc or f"Extract {class_name} records from the text.",
                      origin=target)


def _object_model(name: str, schema: dict[str, Any], *, where: str,
                  extra: dict[str, Any] | None = None) -> type[BaseModel]:
    required = set(schema.get("required", schema["properties"].keys()))
    fields: dict[str, Any] = {}
    for key, prop in schema["properties"].items():
        if not isinstance(prop, dict):
            raise SchemaError(f"{where}: property {key!r} must be an object")
        here = f"{where}: property {key!r}"
        annotation = _annotation(f"{name}_{key}", prop, where=here)
        description = prop.get("description")
        marker = _marker(prop, here)
        if key in required:
            fields[key] = (annotation, Field(description=description, json_schema_extra=marker))
        else:
            fields[key] = (Optional[annotation],
                           Field(default=None, description=description,
                                 json_schema_extra=marker))
    return create_model(_class_name(name),
                        __config__=ConfigDict(extra="forbid", json_schema_extra=extra), **fields)


def _marker(node: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The node's ``x-extractive`` marker, kept for the generated model's JSON Schema."""
    if EXTRACTIVE_KEY not in node:
        return None
    value = node[EXTRACTIVE_KEY]
    if not (isinstance(value, bool) or value == IGNORE_CASE):
        raise SchemaError(f"{where}: {EXTRACTIVE_KEY} must be true, false or {IGNORE_CASE!r}",
                          hint=f'e.g. "{EXTRACTIVE_KEY}": true on a string copied from the text')
    return {EXTRACTIVE_KEY: value}


def _annotation(name: str, prop: dict[str, Any], *, where: str) -> Any:
    kind = prop.get("type")
    if "enum" in prop:
        from typing import Literal
        return Literal[tuple(prop["enum"])]  # type: ignore[misc]
    if kind == "string":
        return Annotated[str, StringConstraints(
            strip_whitespace=True, max_length=prop.get("maxLength", DEFAULT_MAX_STRING))]
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        items = prop.get("items")
        if not isinstance(items, dict):
            raise SchemaError(f"{where}: an array needs an 'items' schema")
        inner = _annotation(f"{name}_item", items, where=where)
        marker = _marker(items, f"{where} items")
        if marker:
            inner = Annotated[inner, Field(json_schema_extra=marker)]
        return Annotated[list[inner], Field(max_length=prop.get("maxItems", DEFAULT_MAX_ITEMS))]
    if kind == "object" and isinstance(prop.get("properties"), dict):
        return _object_model(name, prop, where=where)
    raise SchemaError(f"{where}: unsupported type {kind!r}",
                      hint="supported: object, array, string, integer, number, boolean, enum")


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in str(name).replace("-", "_").split("_")) or "Record"
