"""What a schema is to the pipeline: a pydantic model plus what the prompt needs to know."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

# Applied to any string/array in a schema that sets no bound of its own, so that decoding
# always finishes inside its budget (small models loop inside strings and lists).
DEFAULT_MAX_STRING = 64
DEFAULT_MAX_ITEMS = 8

FEWSHOT_DIR = Path(__file__).parent / "fewshot"

# Marks string fields whose values must be copied from the source text (see
# ``extractive_fields``): true (case as written), "ignore-case", or false (opt out).
EXTRACTIVE_KEY = "x-extractive"
IGNORE_CASE = "ignore-case"


@dataclass(frozen=True)
class Example:
    """One few-shot demonstration: a source text and the record a careful annotator wrote."""

    text: str
    output: dict[str, Any]
    origin: str = ""  # dataset id it came from, so evaluation can keep it out of test data


@dataclass(frozen=True)
class SchemaSpec:
    """A registered extraction schema."""

    name: str
    version: str
    model: type[BaseModel]
    instructions: str  # task description placed at the top of the prompt
    examples: tuple[Example, ...] = ()
    # Semantic rules a grammar cannot enforce (cross-field references, "at least one of").
    # They do not make a record invalid; they feed the Reflexion loop as signals.
    checks: tuple[Callable[[Any], list[str]], ...] = ()
    origin: str = "built-in"
    extra: dict[str, Any] = field(default_factory=dict)

    def json_schema(self) -> dict[str, Any]:
        """The model's JSON Schema with bounds filled in, used for the grammar and the prompt."""
        return bounded_json_schema(self.model.model_json_schema())

    def extractive_paths(self) -> dict[str, ExtractiveField]:
        """Field path pattern (``hosts[]``, ``links[].host``) -> how its values are copied
        from the source, for the decoder's copy constraint."""
        return extractive_fields(self.json_schema())

    def field_descriptions(self) -> dict[str, str]:
        """Dotted field path -> description; used as retrieval queries and in the prompt."""
        return dict(_describe(self.json_schema()))

    def accepts(self, record: Any) -> bool:
        """Whether ``record`` validates: gold the grammar could not produce (too long, too
        many items) can neither be taught nor scored as reachable."""
        try:
            self.model.model_validate(record)
        except ValidationError:
            return False
        return True

    def check(self, record: BaseModel) -> list[str]:
        return [problem for rule in self.checks for problem in rule(record)]

    def empty_output(self) -> dict[str, Any]:
        return self.extra.get("empty_output", {})


@dataclass(frozen=True)
class ExtractiveField:
    """A string field whose values are spans of the source text."""

    path: str  # e.g. "links[].host": keys joined by ".", "[]" for array items
    ignore_case: bool  # False: the letters' case as in the source
    min_chars: int  # the schema's bounds on the string
    max_chars: int


def extractive(*, ignore_case: bool = False) -> dict[str, Any]:
    """``json_schema_extra`` that marks a pydantic field (a string or a list of strings) as
    copied from the source."""
    return {EXTRACTIVE_KEY: IGNORE_CASE if ignore_case else True}


def extractive_fields(schema: dict[str, Any]) -> dict[str, ExtractiveField]:
    """The string fields of ``schema`` governed by an ``x-extractive`` marker.

    The nearest marker on the way from the root to a string decides, so a marker on an
    object or array covers every string below it and ``false`` opts a part out. Strings with
    an enum or const are never extractive (the grammar already fixes their values).
    """
    defs = schema.get("$defs", {})
    found: dict[str, ExtractiveField] = {}

    def visit(node: dict[str, Any], path: str, marker: Any, seen: frozenset[str]) -> None:
        ref = node.get("$ref", "")
        if ref in seen:
            return
        node = _deref(node, defs)
        marker = node.get(EXTRACTIVE_KEY, marker)
        seen = seen | {ref} if ref else seen
        kind = node.get("type")
        for branch in node.get("anyOf", []) + node.get("oneOf", []):  # e.g. Optional[str]
            visit(branch, path, marker, seen)
        if kind == "object":
            for key, prop in node.get("properties", {}).items():
                visit(prop, f"{path}.{key}" if path else key, marker, seen)
        elif kind == "array" and isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[]", marker, seen)
        elif kind == "string" and marker not in (None, False) \
                and not {"enum", "const"} & node.keys():
            low, high = string_bounds(node)
            found[path] = ExtractiveField(path, marker == IGNORE_CASE, low, high)

    visit(schema, "", None, frozenset())
    return found


def string_bounds(node: dict[str, Any]) -> tuple[int, int]:
    """(min, max) characters of a string node, from the bounds ``bounded_json_schema`` keeps
    beside its pattern, or from its lengths."""
    if LENGTH_KEY in node:
        low, high = node[LENGTH_KEY]
        return int(low), int(high)
    return int(node.get("minLength", 0)), int(node.get("maxLength", DEFAULT_MAX_STRING))


# One character a bounded string may hold: no quote, backslash, control character or
# surrogate (see ``bounded_json_schema``).
_STRING_CHAR = '[^"\\\\\\x00-\\x1f\\ud800-\\udfff]'
# xgrammar compiles a repetition C{0,N} with N over about 190 so that its grammar cache
# fails (per_rule_fsm_hashes) and, without the cache, every token mask costs ~17 ms instead
# of ~0.02 ms. Longer bounds are therefore written as blocks of at most this many characters.
_BLOCK = 64
# The bounds of a pattern-bounded string, kept beside the pattern (xgrammar ignores the key).
LENGTH_KEY = "x-length"


def string_pattern(low: int, high: int) -> str:
    """A regex for ``low``..``high`` characters of ``_STRING_CHAR`` that xgrammar compiles
    cheaply at any length: no repetition count above ``2 * _BLOCK``."""
    if high <= 2 * _BLOCK:
        return f"^{_STRING_CHAR}{{{low},{high}}}$"
    return f"^{_exactly(low)}{_up_to(high - low)}$"


def _exactly(count: int) -> str:
    if count <= 2 * _BLOCK:
        return f"{_STRING_CHAR}{{{count}}}" if count else ""
    blocks, rest = divmod(count, _BLOCK)
    return f"(?:{_STRING_CHAR}{{{_BLOCK}}}){{{blocks}}}" + _exactly(rest)


def _up_to(count: int) -> str:
    """0..count characters: (C{B}){0,q-1} (C{0,B} | C{B} C{0,r}) for count = q*B + r."""
    if count <= 2 * _BLOCK:
        return f"{_STRING_CHAR}{{0,{count}}}"
    blocks, rest = divmod(count, _BLOCK)
    last = f"{_STRING_CHAR}{{0,{_BLOCK}}}"
    if rest:
        last = f"(?:{last}|{_STRING_CHAR}{{{_BLOCK}}}{_STRING_CHAR}{{0,{rest}}})"
    return f"(?:{_STRING_CHAR}{{{_BLOCK}}}){{0,{blocks - 1}}}{last}"


def entries_need_one_of(root: str, fields: tuple[str, ...],
                        what: str) -> Callable[[Any], list[str]]:
    """A check: every entry of list ``root`` fills at least one of ``fields``."""
    def check(record: Any) -> list[str]:
        return [f"{root}[{position}]: {what} needs {' or '.join(fields)}"
                for position, entry in enumerate(getattr(record, root))
                if not any(getattr(entry, name) for name in fields)]

    return check


def load_examples(name: str) -> tuple[Example, ...]:
    path = FEWSHOT_DIR / f"{name}.json"
    if not path.exists():
        return ()
    return tuple(Example(**item) for item in json.loads(path.read_text(encoding="utf-8")))


def bounded_json_schema(schema: dict[str, Any], *,
                        strings: Literal["pattern", "length"] = "pattern") -> dict[str, Any]:
    """Copy of ``schema`` where every string and every array has an upper bound.

    Strings become a bounded pattern that also excludes control characters, quotes and
    backslashes (xgrammar ignores maxLength next to a pattern, and a raw tab would make the
    JSON invalid): the decoder can then neither loop inside a string nor write bad JSON.
    Surrogate code points are excluded too: xgrammar would accept their 3-byte forms, which
    are not UTF-8 and decode to three replacement characters, breaking the length bound.
    ``strings="length"`` bounds strings with minLength/maxLength instead, for grammar engines
    whose regex support does not cover that class (llama.cpp's JSON grammar already keeps
    control characters out of strings).
    """
    def bound(node: dict[str, Any]) -> None:
        kind = node.get("type")
        if kind == "string" and not {"enum", "const", "pattern", "format"} & node.keys():
            low = int(node.pop("minLength", 0))
            high = int(node.pop("maxLength", DEFAULT_MAX_STRING))
            if strings == "length":
                node.update(minLength=low, maxLength=high)
            else:
                node["pattern"] = string_pattern(low, high)
                node[LENGTH_KEY] = [low, high]
        if kind == "array" and "maxItems" not in node:
            node["maxItems"] = DEFAULT_MAX_ITEMS

    return edited_copy(schema, bound)


def edited_copy(schema: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A deep copy of ``schema`` with ``edit`` applied, in place, to every object node
    (parents before children)."""
    edited = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            edit(node)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(edited)
    return edited


def skeleton(schema: dict[str, Any]) -> Any:
    """The largest of the smallest values: every array holds one minimal item.

    Its serialised length bounds what is needed to close an answer from any point inside it,
    so the decoder knows how many tokens to keep in reserve.
    """
    defs = schema.get("$defs", {})

    def build(node: dict[str, Any]) -> Any:
        node = _deref(node, defs)
        kind = node.get("type")
        if "enum" in node:
            return max(node["enum"], key=lambda v: len(json.dumps(v)))
        if kind == "object":
            required = node.get("required", list(node.get("properties", {})))
            return {key: build(node["properties"][key]) for key in required}
        if kind == "array":
            return [build(node.get("items", {}))]
        if kind == "string":
            return "x" * int(node.get("minLength", 1))
        if kind in ("integer", "number"):
            return 0
        if kind == "boolean":
            return False
        return None

    return build(schema)


def _describe(schema: dict[str, Any], prefix: str = "",
              defs: dict[str, Any] | None = None) -> Iterator[tuple[str, str]]:
    defs = schema.get("$defs", {}) if defs is None else defs
    for key, prop in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        prop = _deref(prop, defs)
        if prop.get("description"):
            yield path, prop["description"]
        items = _deref(prop.get("items", {}), defs)
        if items.get("properties"):
            yield from _describe(items, f"{path}[].", defs)
        if prop.get("properties"):
            yield from _describe(prop, f"{path}.", defs)


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        merged = dict(defs[ref.split("/")[-1]])
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return merged
    return node


def scalar_leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(field path, value) for every scalar that is neither None nor a blank string, in order.

    Paths look like ``links[0].host``: the keys of ``Extraction.evidence`` after the record."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from scalar_leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from scalar_leaves(item, f"{path}[{position}]")
    elif value is not None and not (isinstance(value, str) and not value.strip()):
        yield path, value


def without_positions(path: str) -> str:
    """The field a leaf path belongs to, list positions removed: ``links[1].host`` ->
    ``links.host`` (values of one field across list items share it)."""
    return re.sub(r"\[\d+\]", "", path)


def string_leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, string) for every non-empty string in a JSON-like value, in order."""
    return ((p, v) for p, v in scalar_leaves(value, path) if isinstance(v, str))
