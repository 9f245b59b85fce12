"""One record per document from the records of its units, by the shape of the schema.

Entities equal after normalisation (case, unicode dashes and minus, whitespace, sub- and
superscript digits: the grounding rules) become one, keeping the first spelling. Lists of
strings are united. Two objects in a list (a doping link, a material, a MOF) become one when
they agree on at least one non-empty text field and disagree on none: ZnO-Al twice is one
link, ZnO-Al and ZnO-Ga stay two; {formula: ZnO} and {formula: ZnO, name: zinc oxide} become
one entry with both. Other fields keep their first non-empty value. Evidence is found for
the merged values afterwards, over the whole document, so each value keeps all its spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from extraction.checking.grounding import normalise
from extraction.schemas.base import string_leaves


def merge_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The union of ``records`` (all of one schema), as one record. Every string takes the
    first spelling seen of its normalised form, so a link names its host exactly as the
    host list does."""
    spelling: dict[str, str] = {}
    for record in records:
        for _, value in string_leaves(record):
            spelling.setdefault(normalise(value), value)
    merged: dict[str, Any] = {}
    for record in records:
        _merge_into(merged, _respell(record, spelling))
    return merged


def _respell(value: Any, spelling: dict[str, str]) -> Any:
    if isinstance(value, str):
        return spelling.get(normalise(value), value) if value.strip() else value
    if isinstance(value, list):
        return [_respell(item, spelling) for item in value]
    if isinstance(value, dict):
        return {key: _respell(item, spelling) for key, item in value.items()}
    return value


def _merge_into(target: dict[str, Any], record: dict[str, Any]) -> None:
    for field, value in record.items():
        if isinstance(value, list):
            items = target.setdefault(field, [])
            for item in value:
                _add(items, item)
        elif field not in target or _empty(target[field]):
            target[field] = value


def _add(items: list[Any], item: Any) -> None:
    if isinstance(item, dict):
        for existing in items:
            if isinstance(existing, dict) and _same_entity(existing, item):
                _merge_into(existing, item)
                return
        items.append(item)
    elif not _empty(item) and _key(item) not in {_key(x) for x in items}:
        items.append(item)


def _same_entity(a: dict[str, Any], b: dict[str, Any]) -> bool:
    shared = [f for f in a.keys() & b.keys()
              if isinstance(a[f], str) and isinstance(b[f], str)
              and not _empty(a[f]) and not _empty(b[f])]
    return bool(shared) and all(_key(a[f]) == _key(b[f]) for f in shared)


def _key(value: Any) -> Any:
    return normalise(value) if isinstance(value, str) else value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []
