"""Pick the built-in few-shot examples from NERRE *training* data (never test/validation).

Run from the repo root: python scripts/make_fewshot.py [NERRE_DIR]
Writes extraction/schemas/fewshot/{doping,general,mof}.json. Each example records its origin
so the evaluation harness can keep it out of any scored split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "extraction" / "schemas" / "fewshot"


def doping_record(sentence: dict) -> dict:
    hosts = list(dict.fromkeys(sentence["basemats"].values()))
    dopants = list(dict.fromkeys(sentence["dopants"].values()))
    links = []
    for dopant_id, host_ids in sentence["dopants2basemats"].items():
        for host_id in host_ids:
            link = {"host": sentence["basemats"][host_id], "dopant": sentence["dopants"][dopant_id]}
            if link not in links:
                links.append(link)
    return {"hosts": hosts, "dopants": dopants, "links": links}


def doping_examples(nerre: Path) -> list[dict]:
    abstracts = json.loads((nerre / "doping/data/train.json").read_text())
    wanted = {"one": None, "many": None, "none": None}
    for a_index, abstract in enumerate(abstracts):
        for s_index, sentence in enumerate(abstract["doping_sentences"]):
            text = sentence["sentence_text"]
            if len(text) > 220:
                continue
            record = doping_record(sentence)
            origin = f"nerre-doping-train:{abstract['doi']}#{s_index}"
            example = {"text": text, "output": record, "origin": origin}
            if sentence["relevant"] and len(record["links"]) == 1 and not wanted["one"]:
                wanted["one"] = example
            elif sentence["relevant"] and len(record["dopants"]) >= 2 and len(record["links"]) >= 2 \
                    and not wanted["many"]:
                wanted["many"] = example
            elif not sentence["relevant"] and not record["hosts"] and len(text) > 80 \
                    and not wanted["none"] and not sentence.get("sentence_cems") and text.isascii():
                wanted["none"] = example
    # The empty example goes first: small models copy the shape of the last example most.
    return [wanted["none"], wanted["one"], wanted["many"]]


def _clean_entry(entry: dict, list_keys: tuple[str, ...]) -> dict:
    cleaned = {}
    for key, value in entry.items():
        if key in list_keys:
            values = value if isinstance(value, list) else [value]
            cleaned[key] = [v for v in values if isinstance(v, str) and v.strip()]
        else:
            value = value[0] if isinstance(value, list) and value else value
            cleaned[key] = value if isinstance(value, str) else ""
    return cleaned


def jsonl_examples(path: Path, *, root_key: str, keys: tuple[str, ...],
                   list_keys: tuple[str, ...], count: int, tag: str) -> list[dict]:
    picked = []
    for line_no, line in enumerate(path.read_text().splitlines()):
        row = json.loads(line)
        text = row["prompt"].removesuffix("\n\n###\n\n")
        entries = json.loads(row["completion"].strip().removesuffix("END").strip())
        if not 300 < len(text) < 700 or not 1 <= len(entries) <= 2:
            continue
        cleaned = [_clean_entry({k: e.get(k, "") for k in keys}, list_keys) for e in entries]
        if not all(entry[keys[0]] or entry[keys[1]] for entry in cleaned):
            continue  # the schemas require a name or formula for every entry
        picked.append({"text": text, "output": {root_key: cleaned},
                       "origin": f"{tag}:line{line_no}"})
        if len(picked) == count:
            break
    return picked


def main() -> None:
    nerre = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "nerre"
    OUT.mkdir(parents=True, exist_ok=True)
    general = nerre / "general_and_mofs/data"
    sets = {
        "doping": doping_examples(nerre),
        "general": jsonl_examples(
            general / "experiments_general/fold_0/train.jsonl", root_key="materials",
            keys=("formula", "name", "acronym", "applications", "structure_or_phase",
                  "description"),
            list_keys=("applications", "structure_or_phase", "description"), count=2,
            tag="nerre-general-fold0-train"),
        "mof": jsonl_examples(
            general / "experiments_mof_gpt3/fold_0/train.jsonl", root_key="mofs",
            keys=("name_of_mof", "mof_formula", "mof_description", "guest_species",
                  "applications"),
            list_keys=("mof_description", "guest_species", "applications"), count=2,
            tag="nerre-mof-fold0-train"),
    }
    for name, examples in sets.items():
        (OUT / f"{name}.json").write_text(json.dumps(examples, indent=1, ensure_ascii=False) + "\n")
        print(name, len(examples))


if __name__ == "__main__":
    main()
