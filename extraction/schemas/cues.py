"""Reflexion cues for a user's JSON Schema: top-level field -> a regex whose match in the text
shows the field should not be left empty (``spec.extra["cues"]``, read by
``checking.reflexion.find_missing``).

Built-in schemas write their cues by hand. A user schema gets them from its own words: the
distinctive words of each top-level field's name and description and of everything below it
(for a root ``records: [...]`` list the words are in the items). ``"x-cues": "REGEX"`` on a
top-level property replaces the derived cue; ``"x-cues": false`` turns it off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from extraction.errors import SchemaError

CUES_KEY = "x-cues"
MIN_LETTERS = 4
# Words that say how to extract, not what: in nearly every description, so no cue.
STOP_WORDS = frozenset("""
    about above added after also answer article based been being both copied describes
    descriptive does each either else empty entries entry every example extract extracted
    field fields form from give given have here into item items just kind like list listed
    mentioned more most must name named names none only other over paper part record records
    reported same short should some studied study such text than that their them then there
    these they this those type under used value values were what when where which while with
    within without word words would written your
""".split())


def schema_cues(schema: dict[str, Any], *, where: str) -> dict[str, str]:
    """Top-level field -> cue regex for an object schema's properties (fields without
    distinctive words get none)."""
    cues = {}
    for key, prop in schema["properties"].items():
        if CUES_KEY in prop:
            given = _given_cue(prop[CUES_KEY], where=f"{where}: property {key!r}")
            if given:
                cues[key] = given
            continue
        words = distinctive_words(key, prop)
        if words:
            cues[key] = r"(?i)\b(?:" + "|".join(map(re.escape, words)) + r")\w*"
    return cues


def distinctive_words(name: str, node: dict[str, Any]) -> list[str]:
    """Lower-cased words of ``name`` (snake_case and camelCase split) and of the texts below
    ``node``, in order of first appearance, without stop words and words under 4 letters."""
    found: dict[str, None] = {}
    for text in (name, *_texts(node)):
        spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text.replace("_", " "))
        for word in re.findall(r"[^\W\d_]+", spaced):
            word = word.lower()
            if len(word) >= MIN_LETTERS and word not in STOP_WORDS:
                found.setdefault(word)
    return list(found)


def _texts(node: dict[str, Any]) -> Iterator[str]:
    """The description of ``node`` and the names and descriptions of everything below it."""
    if isinstance(node.get("description"), str):
        yield node["description"]
    if isinstance(node.get("items"), dict):
        yield from _texts(node["items"])
    for key, prop in (node.get("properties") or {}).items():
        yield key
        if isinstance(prop, dict):
            yield from _texts(prop)


def _given_cue(value: Any, *, where: str) -> str | None:
    if value is False:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"{where}: {CUES_KEY} must be a regular expression or false",
                          hint=f'e.g. "{CUES_KEY}": "(?i)\\\\banneal" (case-insensitive)')
    try:
        re.compile(value)
    except re.error as exc:
        raise SchemaError(f"{where}: {CUES_KEY} is not a valid regular expression ({exc})",
                          hint="a Python regular expression; escape special characters "
                               "such as ( + ? with a backslash") from exc
    return value
