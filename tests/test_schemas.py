"""Schema registry: built-ins, user JSON Schema files, module:Class, bounds for the grammar."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import BaseModel, ValidationError

from extraction.errors import SchemaError
from extraction.schemas import builtin_names, get_schema
from extraction.schemas.base import DEFAULT_MAX_ITEMS, bounded_json_schema


def _strings_and_arrays(node):
    if isinstance(node, dict):
        if node.get("type") in ("string", "array"):
            yield node
        for value in node.values():
            yield from _strings_and_arrays(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings_and_arrays(value)


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_schema_is_bounded_and_examples_validate(name):
    spec = get_schema(name)
    nodes = list(_strings_and_arrays(spec.json_schema()))
    assert {node["type"] for node in nodes} == {"string", "array"}
    for node in nodes:
        if node["type"] == "string":
            assert re.fullmatch(r'\^\[\^"\\\\\\x00-\\x1f\\ud800-\\udfff\]\{\d+,\d+\}\$',
                                node["pattern"])
        else:
            assert "maxItems" in node
    assert spec.field_descriptions()
    assert spec.examples, "few-shot examples ship with every built-in schema"
    for example in spec.examples:
        record = spec.model.model_validate(example.output)
        assert spec.check(record) == []
        assert example.origin.startswith("nerre-") and "train" in example.origin


def test_bounds_are_added_where_missing():
    bounded = bounded_json_schema({"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string"}},
        "kind": {"type": "string", "enum": ["a", "b"]}}})
    assert bounded["properties"]["tags"]["maxItems"] == DEFAULT_MAX_ITEMS
    assert bounded["properties"]["tags"]["items"]["pattern"].endswith("{0,64}$")
    assert "pattern" not in bounded["properties"]["kind"]


def test_user_json_schema_file(tmp_path):
    path = tmp_path / "alloy.json"
    path.write_text(json.dumps({
        "title": "alloy", "description": "Extract alloys.", "type": "object",
        "properties": {
            "name": {"type": "string", "description": "alloy name"},
            "elements": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            "melting_point_k": {"type": "number"},
            "phase": {"type": "string", "enum": ["fcc", "bcc", "hcp"]}},
        "required": ["name", "elements"]}))
    spec = get_schema(str(path))
    record = spec.model.model_validate({"name": "Inconel 718", "elements": ["Ni", "Cr"],
                                        "phase": "fcc"})
    assert record.melting_point_k is None
    with pytest.raises(ValidationError):
        spec.model.model_validate({"name": "x", "elements": [], "colour": "red"})  # extra key
    with pytest.raises(ValidationError):
        spec.model.model_validate({"name": "x", "elements": ["a"] * 6})
    assert spec.instructions == "Extract alloys."


@pytest.mark.parametrize("content,message", [
    ("{oops", "not valid JSON"),
    ('{"type": "array"}', "object schema"),
    ('{"type": "object", "properties": {"x": {"type": "tuple"}}}', "unsupported type"),
    ('{"type": "object", "properties": {"x": {"type": "array"}}}', "items"),
])
def test_bad_user_schema_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SchemaError, match=message):
        get_schema(str(path))


class Alloy(BaseModel):
    """Extract alloys and their elements."""

    name: str
    elements: list[str]


def test_module_class_schema():
    spec = get_schema("tests.test_schemas:Alloy")
    # pytest imports this file under another module name: compare by content, not identity
    assert spec.model.__name__ == "Alloy" and spec.instructions.startswith("Extract alloys")
    assert set(spec.model.model_fields) == {"name", "elements"}
    assert spec.json_schema()["properties"]["elements"]["maxItems"] == DEFAULT_MAX_ITEMS


@pytest.mark.parametrize("name", ["alloys", "missing.json", "tests.test_schemas:Nope"])
def test_unknown_schema_names_the_fix(name):
    with pytest.raises(SchemaError) as info:
        get_schema(name)
    assert "doping" in str(info.value) or "import" in str(info.value) or "exist" in str(info.value)
