"""Any string bound a valid JSON Schema can hold compiles and holds in constrained decoding
(xgrammar failed with 'per_rule_fsm_hashes' on maxLength >= ~190 before blocks were used)."""

from __future__ import annotations

import json
import re

import pytest

from extraction.decoding.generation import JsonConstraint
from extraction.schemas import get_schema
from extraction.schemas.base import extractive_fields, string_pattern


@pytest.mark.parametrize(("low", "high"), [(0, 64), (0, 129), (0, 256), (3, 300), (1, 1000),
                                           (200, 260), (0, 0)])
def test_the_pattern_admits_exactly_the_bounded_lengths(low, high):
    pattern = re.compile(string_pattern(low, high))
    admitted = [n for n in range(high + 3) if pattern.match("a" * n)]
    assert admitted == list(range(low, high + 1))


@pytest.mark.parametrize("tiny_model", ["llama"], indirect=True)
@pytest.mark.parametrize("bound", [64, 256, 1000])
def test_a_user_schema_with_a_long_max_length_compiles_and_bounds_the_string(
        tiny_model, tmp_path, bound):
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"type": "object", "properties": {
        "procedure": {"type": "string", "maxLength": bound, "x-extractive": True},
        "steps": {"type": "array", "items": {"type": "string", "maxLength": bound}}},
        "required": ["procedure", "steps"]}))
    schema = get_schema(str(path)).json_schema()
    constraint = JsonConstraint(tiny_model, schema)
    # the copy constraint reads the same bounds back
    assert extractive_fields(schema)["procedure"].max_chars == bound

    def accepts(text: str) -> bool:
        return constraint.matcher().accept_string(text)

    assert accepts('{"procedure":"' + "x" * bound + '","steps":["' + "y" * bound + '"]}')
    assert not accepts('{"procedure":"' + "x" * (bound + 1))
    assert not accepts('{"procedure":"","steps":["' + "y" * (bound + 1))
