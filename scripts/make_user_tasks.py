"""Build the two user-schema tasks from NERRE data: what a scientist with their own JSON
Schema and a few hundred annotated paragraphs would bring (issue #15).

Run from the repo root: python scripts/make_user_tasks.py
Writes data/user_tasks/{doped_samples,materials}/{schema.json,train.jsonl,test.jsonl}.

- ``doped_samples``: whole doping abstracts (NERRE doping train/test split); one record per
  host-dopant pair, records for hosts or dopants named without a partner.
- ``materials``: the general-materials abstracts of fold 0 (train / validation), every field
  renamed and described in our own words, as a user would write it.

Only training splits go into ``train.jsonl``; ``test.jsonl`` is for reporting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from extraction.datasets import nerre as nerre_data
from extraction.datasets.conversion import entries_to_ours
from extraction.datasets.nerre_format import DopingRecord
from extraction.datasets.conversion import union_doping

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "user_tasks"
SCHEMA_FILE = "schema.json"

DOPED_SAMPLES_SCHEMA: dict[str, Any] = {
    "title": "doped_samples",
    "description": "List every doped material the text reports: the host material and the "
                   "element or ion it is doped with, copied as written.",
    "type": "object",
    "properties": {"samples": {
        "type": "array",
        "description": "one entry per host and dopant pair",
        "items": {"type": "object", "properties": {
            "host_material": {"type": "string",
                              "description": "the material that is doped, e.g. ZnO; empty "
                                             "if the text names none"},
            "dopant": {"type": "string",
                       "description": "the element or ion added to the host, e.g. Al or "
                                      "Er3+; empty if the text names none"}},
            "required": ["host_material", "dopant"]}}},
    "required": ["samples"],
}

# our name -> (NERRE general field, description)
MATERIAL_FIELDS: dict[str, tuple[str, str]] = {
    "chemical_formula": ("formula", "the compound's formula as written, e.g. LiFePO4"),
    "material_name": ("name", "the material's name as written, e.g. lithium iron phosphate"),
    "abbreviation": ("acronym", "short form the text uses for it, e.g. LFP"),
    "uses": ("applications", "what it is used or studied for, e.g. cathode, photocatalyst"),
    "crystal_phase": ("structure_or_phase", "crystal structure or phase, e.g. anatase"),
    "characteristics": ("description", "other descriptive words, e.g. nanoparticles, porous"),
}
LIST_FIELDS = ("uses", "crystal_phase", "characteristics")

MATERIALS_SCHEMA: dict[str, Any] = {
    "title": "materials",
    "description": "Record every material the text studies, with its formula, name, "
                   "abbreviation, uses, crystal phase and characteristics.",
    "type": "object",
    "properties": {"records": {
        "type": "array",
        "description": "one entry per material",
        "items": {"type": "object", "properties": {
            name: ({"type": "array", "items": {"type": "string"}, "description": text}
                   if name in LIST_FIELDS else {"type": "string", "description": text})
            for name, (_, text) in MATERIAL_FIELDS.items()},
            "required": list(MATERIAL_FIELDS)}}},
    "required": ["records"],
}


def doped_samples(graph: DopingRecord) -> dict[str, Any]:
    samples, linked_hosts, linked_dopants = [], set(), set()
    for dopant_id, host_ids in graph.links.items():
        for host_id in host_ids:
            sample = {"host_material": graph.basemats[host_id],
                      "dopant": graph.dopants[dopant_id]}
            if sample not in samples:
                samples.append(sample)
            linked_hosts.add(host_id)
            linked_dopants.add(dopant_id)
    samples += [{"host_material": text, "dopant": ""}
                for i, text in graph.basemats.items() if i not in linked_hosts]
    samples += [{"host_material": "", "dopant": text}
                for i, text in graph.dopants.items() if i not in linked_dopants]
    return {"samples": samples}


def doped_lines(split: str) -> list[dict[str, Any]]:
    return [{"id": abstract.doi, "text": abstract.text, "schema": SCHEMA_FILE,
             "gold": doped_samples(union_doping([s.gold for s in abstract.sentences]))}
            for abstract in nerre_data.load_doping_abstracts_annotated(split)]


def material_lines(fold: int, split: str) -> list[dict[str, Any]]:
    lines = []
    for number, row in enumerate(nerre_data.load_entry_fold("general", fold, split=split)):
        ours = entries_to_ours(row.entries, "general")["materials"]
        records = [{name: item[source] for name, (source, _) in MATERIAL_FIELDS.items()}
                   for item in ours]
        lines.append({"id": f"general-fold{fold}-{split}#{number}", "text": row.abstract,
                      "schema": SCHEMA_FILE, "gold": {"records": records}})
    return lines


def write_task(name: str, schema: dict[str, Any], train: list[dict], test: list[dict]) -> None:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SCHEMA_FILE).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    for file_name, lines in (("train.jsonl", train), ("test.jsonl", test)):
        (folder / file_name).write_text(
            "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
            encoding="utf-8")
    print(f"{folder}: {len(train)} training and {len(test)} test paragraphs")


def main() -> None:
    write_task("doped_samples", DOPED_SAMPLES_SCHEMA, doped_lines("train"), doped_lines("test"))
    write_task("materials", MATERIALS_SCHEMA, material_lines(0, "train"),
               material_lines(0, "val"))


if __name__ == "__main__":
    main()
