"""The NERRE benchmark's record formats (Dagdelen et al. 2024): the doping graph of a sentence
and the entry lists of the general and MOF tasks, with their parsers. Scorers (eval/) and
readers (``extraction.datasets.nerre``) share them; nothing here scores or reads files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


# --- doping ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DopingRecord:
    """One sentence's doping graph: entity id -> text, and dopant id -> base-material ids."""

    basemats: Mapping[str, str]
    dopants: Mapping[str, str]
    links: Mapping[str, Sequence[str]]


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _links_map(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        return {}
    return {str(k): [str(i) for i in (v if isinstance(v, list) else [v])]
            for k, v in value.items()}


def doping_record_from_json(obj: Any) -> DopingRecord | None:
    """A record from a parsed completion or annotation (None if it is not a JSON object)."""
    if not isinstance(obj, dict):
        return None
    return DopingRecord(basemats=_str_map(obj.get("basemats")),
                        dopants=_str_map(obj.get("dopants")),
                        links=_links_map(obj.get("dopants2basemats")))


def parse_doping_completion(text: str) -> DopingRecord | None:
    """Parse a model's doping JSON completion; None when it is not valid JSON (unparsable)."""
    try:
        return doping_record_from_json(json.loads(text))
    except ValueError:
        return None


def doping_completion(record: DopingRecord) -> str:
    """The gold completion text in the paper's format (what exact match and similarity use)."""
    body = {"basemats": dict(record.basemats), "dopants": dict(record.dopants),
            "dopants2basemats": {k: list(v) for k, v in record.links.items()}}
    return " " + json.dumps(body, indent=1)



# --- general materials and MOF -----------------------------------------------------------

Entry = dict[str, Any]  # field -> str or list of str, as annotated (types are not enforced)


@dataclass(frozen=True)
class EntrySchema:
    """The fields of one entry-list task; ``root`` is the field other fields link to."""

    name: str
    root: str
    fields: tuple[str, ...]
    list_fields: frozenset[str]

    def __post_init__(self) -> None:
        if self.root not in self.fields:
            raise ValueError(f"EntrySchema.root {self.root!r} is not one of fields {self.fields}")


GENERAL_SCHEMA = EntrySchema(
    name="general", root="formula",
    fields=("name", "formula", "acronym", "applications", "structure_or_phase", "description"),
    list_fields=frozenset({"applications", "structure_or_phase", "description"}))
MOF_SCHEMA = EntrySchema(
    name="mof", root="name_of_mof",
    fields=("name_of_mof", "mof_formula", "mof_description", "guest_species", "applications"),
    list_fields=frozenset({"mof_description", "guest_species", "applications"}))
ENTRY_SCHEMAS = {schema.name: schema for schema in (GENERAL_SCHEMA, MOF_SCHEMA)}


def completion_body(text: str) -> str:
    """A completion without its surrounding whitespace and the training stop word END."""
    body = text.strip()
    return body[:-3].rstrip() if body.endswith("END") else body


def normalize_entry(entry: Mapping[str, Any], schema: EntrySchema) -> Entry:
    """Missing fields filled with "" (or [""] for list fields), extra keys dropped."""
    return {f: entry.get(f, [""] if f in schema.list_fields else "") for f in schema.fields}


def parse_entries(text: str, schema: EntrySchema, *,
                  strip_backslashes: bool = False) -> list[Entry] | None:
    """Parse an entry-list completion; None when it is not a JSON list (unparsable).

    SCORING.md says backslashes were removed from the raw completion. The published numbers
    reproduce only when the text is parsed as is (the default): removing backslashes from
    gold and predicted text alike leaves the Llama-2 numbers unchanged, but makes two GPT-3
    general completions with invalid escapes parsable and moves GPT-3 structure/phase F1 from
    the published 0.622 to 0.638.
    """
    body = completion_body(text)
    if strip_backslashes:
        body = body.replace("\\", "")
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    return [normalize_entry(entry, schema) for entry in value if isinstance(entry, dict)]
