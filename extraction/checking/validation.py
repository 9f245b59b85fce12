"""Parse and validate a model answer against the schema's pydantic model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from extraction.schemas.base import SchemaSpec


@dataclass
class Validated:
    """A parsed answer: the typed record when valid, else the reasons it is not."""

    parsed: Any | None  # the JSON value, if it parsed at all
    record: dict[str, Any] | None  # model_dump() of the validated record
    errors: list[str] = field(default_factory=list)  # schema violations: record is None
    problems: list[str] = field(default_factory=list)  # semantic checks of a valid record

    @property
    def parses(self) -> bool:
        return self.parsed is not None

    @property
    def valid(self) -> bool:
        return self.record is not None


def validate(spec: SchemaSpec, raw: str) -> Validated:
    try:
        # strict=False: a raw tab inside a string is harmless; the grammar cannot exclude it.
        parsed = json.loads(raw, strict=False)
    except json.JSONDecodeError as exc:
        problem = f"the answer is not valid JSON ({exc.msg} at char {exc.pos})"
        return Validated(None, None, [problem])
    try:
        record = spec.model.model_validate(parsed)
    except ValidationError as exc:
        return Validated(parsed, None, [_describe(error) for error in exc.errors()])
    return Validated(parsed, record.model_dump(mode="json"), problems=spec.check(record))


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "answer"
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    return f"{where}: {message}"
