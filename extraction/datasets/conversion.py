"""Annotated records in the benchmark's shapes <-> our schemas' record format.

The NERRE files hold doping graphs and entry lists (``nerre_format``); our schemas hold
``{hosts, dopants, links}`` and ``{materials: [...]}`` / ``{mofs: [...]}``. Training (gold ->
ours), scoring (ours -> strict) and reports all convert through here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from extraction.datasets.nerre_format import (ENTRY_SCHEMAS, DopingRecord, Entry,
                                             normalize_entry)

# Our record's list of entries for each entry-list schema, and each one's root field (the
# field the others link to, as in the paper: general -> formula, MOF -> name_of_mof).
ENTRY_LAYOUT: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "general": ("materials", "formula",
                ("formula", "name", "acronym", "applications", "structure_or_phase",
                 "description")),
    "mof": ("mofs", "name_of_mof",
            ("name_of_mof", "mof_formula", "mof_description", "guest_species", "applications")),
}


def doping_to_ours(record: DopingRecord) -> dict[str, Any]:
    """The paper's graph -> {hosts, dopants, links}; repeated strings are listed once."""
    links: list[dict[str, str]] = []
    for dopant_id, host_ids in record.links.items():
        for host_id in host_ids:
            if dopant_id in record.dopants and host_id in record.basemats:
                link = {"host": record.basemats[host_id], "dopant": record.dopants[dopant_id]}
                if link not in links:
                    links.append(link)
    return {"hosts": list(dict.fromkeys(record.basemats.values())),
            "dopants": list(dict.fromkeys(record.dopants.values())), "links": links}


def union_doping(records: Sequence[DopingRecord]) -> DopingRecord:
    """One graph for a document from its sentences' graphs: entities with the same text
    become one, links are deduplicated (the gold of an abstract-level task)."""
    basemats: dict[str, str] = {}
    dopants: dict[str, str] = {}
    links: dict[str, list[str]] = {}
    for record in records:
        host_ids = {i: basemats.setdefault(t, f"b{len(basemats)}")
                    for i, t in record.basemats.items()}
        dopant_ids = {i: dopants.setdefault(t, f"d{len(dopants)}")
                      for i, t in record.dopants.items()}
        for dopant, hosts in record.links.items():
            if dopant not in dopant_ids:
                continue
            targets = links.setdefault(dopant_ids[dopant], [])
            targets += [host_ids[h] for h in hosts
                        if h in host_ids and host_ids[h] not in targets]
    return DopingRecord(basemats={i: t for t, i in basemats.items()},
                        dopants={i: t for t, i in dopants.items()}, links=links)


def doping_to_strict(record: Mapping[str, Any]) -> DopingRecord:
    """{hosts, dopants, links} -> the paper's graph. A link naming an unlisted host or dopant
    is dropped: the paper's links join ids of listed entities."""
    hosts = [str(h) for h in record.get("hosts", [])]
    dopants = [str(d) for d in record.get("dopants", [])]
    links: dict[str, list[str]] = {}
    for link in record.get("links", []):
        host, dopant = link.get("host"), link.get("dopant")
        if host in hosts and dopant in dopants:
            ids = links.setdefault(f"d{dopants.index(dopant)}", [])
            if (host_id := f"b{hosts.index(host)}") not in ids:
                ids.append(host_id)
    return DopingRecord(basemats={f"b{i}": h for i, h in enumerate(hosts)},
                        dopants={f"d{i}": d for i, d in enumerate(dopants)}, links=links)


def entries_to_ours(entries: Sequence[Mapping[str, Any]], schema: str) -> dict[str, Any]:
    """The paper's entry list -> our record (as scripts/make_fewshot.py cleans it): list
    fields keep their non-empty strings, a text field given as a list keeps its first item."""
    container, _, fields = ENTRY_LAYOUT[schema]
    lists = ENTRY_SCHEMAS[schema].list_fields
    out = []
    for entry in entries:
        item: dict[str, Any] = {}
        for f in fields:
            value = entry.get(f, [] if f in lists else "")
            if f in lists:
                item[f] = [v for v in (value if isinstance(value, list) else [value])
                           if isinstance(v, str) and v.strip()]
            else:
                value = value[0] if isinstance(value, list) and value else value
                item[f] = value if isinstance(value, str) else ""
        out.append(item)
    return {container: out}


def ours_to_entries(record: Mapping[str, Any], schema: str) -> list[Entry]:
    """Our record -> the paper's entry list; an empty list field becomes [""] as annotated."""
    container, _, _ = ENTRY_LAYOUT[schema]
    spec = ENTRY_SCHEMAS[schema]
    entries = []
    for item in record.get(container, []):
        entry = normalize_entry(item, spec)
        entries.append({f: (v or [""]) if f in spec.list_fields else v for f, v in entry.items()})
    return entries


def to_strict(record: Mapping[str, Any] | None, scorer: str) -> Any:
    """Our record in the strict scorer's shape (None stays None: no valid answer)."""
    if record is None:
        return None
    return doping_to_strict(record) if scorer == "doping" else ours_to_entries(record, scorer)


def merge_records(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One record per document: list fields concatenated over windows (None if no record)."""
    if not records:
        return None
    merged: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged.setdefault(key, value)
    return merged
