"""Few-shot examples written inside a user's JSON Schema file, under the root's ``examples``.

Without examples a small base model answers a user schema with its shortest valid answer,
an empty one; a demonstration or two of a filled record fixes that (issue #15).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from extraction.errors import SchemaError
from extraction.schemas.base import Example


def schema_examples(schema: dict[str, Any], model: type[BaseModel], *, path: Path
                    ) -> tuple[Example, ...]:
    """Few-shot examples from the root's ``examples``: items with a ``text`` and its record
    (``gold`` or ``output``). Other items are plain instances of the schema (JSON Schema's
    own use of ``examples``), which show no text to read: no demonstrations, skipped."""
    items = schema.get("examples", [])
    if not isinstance(items, list):
        raise SchemaError(f"{path}: 'examples' must be a list",
                          hint='e.g. "examples": [{"text": "...", "gold": {...}}]')
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not ({"gold", "output"} & item.keys() or (
                "text" in item and "text" not in schema["properties"])):
            continue  # a plain instance (one of a schema with a "text" field may have one)
        where = f"{path}: examples[{index}]"
        record = item.get("gold", item.get("output"))
        if not isinstance(item.get("text"), str) or not item["text"].strip():
            raise SchemaError(f"{where}: 'text' must be a non-empty string",
                              hint='e.g. {"text": "...", "gold": {...}}')
        if not isinstance(record, dict):
            raise SchemaError(f"{where}: needs the record for its text as 'gold' (an object)",
                              hint='e.g. {"text": "...", "gold": {...}}')
        try:
            valid = model.model_validate(record)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'gold'}: {e['msg']}"
                                 for e in exc.errors())
            raise SchemaError(f"{where}: the gold record does not fit the schema: {problems}",
                              hint="fix the example's record, or the schema") from exc
        # as the pipeline writes records: every key, in the schema's order
        found.append(Example(item["text"], valid.model_dump(mode="json"),
                             origin=f"{path}:examples[{index}]"))
    return tuple(found)
