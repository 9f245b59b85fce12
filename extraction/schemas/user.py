"""User schemas: a JSON Schema file, or a pydantic class given as ``module:Class``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from pydantic import BaseModel

from extraction.errors import SchemaError
from extraction.schemas.base import SchemaSpec
from extraction.schemas.cues import schema_cues
from extraction.schemas.json_model import model_from_json_schema
from extraction.schemas.user_examples import schema_examples


def from_json_schema_file(path: Path) -> SchemaSpec:
    """Build a pydantic model from the common subset of JSON Schema (objects, arrays, scalars),
    with the few-shot examples of its ``examples`` and Reflexion cues from its words."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})",
                          hint="a schema file must be a JSON Schema object") from exc
    return from_json_schema(schema, name=path.stem, where=str(path))


def from_json_schema(schema: object, *, name: str, where: str) -> SchemaSpec:
    """A JSON Schema (already read) as a schema named ``name``; ``where`` names it in error
    messages and as its origin. Users' files and fine-tuning's schema variants both come
    through here, so a variant is what the same schema in a file would be."""
    if not isinstance(schema, dict) or schema.get("type") != "object" \
            or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        raise SchemaError(f"{where}: the root must be an object schema with 'properties'",
                          hint='e.g. {"type": "object", "properties": {"alloy": {"type": '
                               '"string"}}}')
    title = schema.get("title") or name
    model = model_from_json_schema(title, schema, where=where)
    instructions = schema.get("description") or f"Extract {title} from the text."
    return SchemaSpec(name=name, version=str(schema.get("version", "1")), model=model,
                      instructions=instructions, origin=where,
                      examples=schema_examples(schema, model, path=Path(where)),
                      extra={"cues": schema_cues(schema, where=where)})


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
