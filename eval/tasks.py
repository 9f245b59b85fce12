"""Evaluation tasks: examples with gold in OUR record format, plus few-shot examples from the
task's own training data, and the converters to and from the strict scorers' shapes.

Task names: ``doping`` (the 77 scored test sentences), ``general:K`` / ``mof:K`` (fold K's
validation abstracts), ``jsonl:PATH`` (any annotated set, format in eval/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval import nerre_data
from eval.nerre_scoring import (
    ENTRY_SCHEMAS,
    DopingRecord,
    Entry,
    link_triplets,
    normalize_entry,
    score_doping,
    score_entries,
)
from eval.normalised import ENTRY_LAYOUT, score_example
from extraction.errors import MatextractError
from extraction.schemas import builtin_names, get_schema
from extraction.schemas.base import Example

STRICT_SCORERS = ("doping", "general", "mof")
FEWSHOT_PER_FOLD = 2
MAX_REPORTED_PROBLEMS = 20


class TaskError(MatextractError):
    """An unknown task name, or a task file with bad lines."""

    hint = "tasks: doping | general:K | mof:K (K = 0..4) | jsonl:PATH (see eval/README.md)"


@dataclass(frozen=True)
class TaskExample:
    """One scored text. ``gold`` is in our schema's record format; ``strict_gold`` is the
    benchmark's own gold in the strict scorer's shape (scored as published, not round-tripped)."""

    id: str
    text: str
    gold: dict[str, Any]
    strict_gold: Any = None


@dataclass(frozen=True)
class Task:
    """What to extract from which texts, and how to score it."""

    name: str  # as given on the command line; part of every result's identity
    schema: str  # ExtractorConfig.schema_name: a built-in name, a JSON Schema path, mod:Class
    examples: tuple[TaskExample, ...]
    few_shot: tuple[Example, ...]  # from the task's training data, never its scored split
    strict: str | None = None  # which strict scorer applies ("doping", "general", "mof")


# --- converters ---------------------------------------------------------------------------

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


# --- per-example scores --------------------------------------------------------------------

def _doping_graph(record: DopingRecord) -> tuple[list[str], list[str], list[str]]:
    return (sorted(record.basemats.values()), sorted(record.dopants.values()),
            sorted(link_triplets(record)))


def strict_counts(scorer: str, gold: Any, predicted: Any) -> dict[str, Any]:
    """The strict scorer on one example, as summable counts: {"fields": {name: [tp, fp, fn]},
    "links": {...}, "exact": 0|1}. ``predicted`` None counts as unparsable (empty)."""
    if scorer == "doping":
        s = score_doping([gold], [predicted])
        exact = predicted is not None and _doping_graph(gold) == _doping_graph(predicted)
        return {"fields": {"hosts": _c(s.basemats), "dopants": _c(s.dopants)},
                "links": {"host-dopant": _c(s.triplets)}, "exact": int(exact)}
    spec = ENTRY_SCHEMAS[scorer]
    e = score_entries([gold], [predicted], spec)
    return {"fields": {f: _c(score) for f, score in e.entities.items()},
            "links": {f"{spec.root}-{f}": _c(score) for f, score in e.links.items()},
            "exact": int(e.exact_match)}


def _c(score: Any) -> list[int]:
    return [score.tp, score.fp, score.fn]


def score_prediction(task: Task, example: TaskExample,
                     record: Mapping[str, Any] | None) -> dict[str, Any]:
    """Strict (None for a schema without a strict scorer) and normalised counts of one answer."""
    strict = None
    if task.strict:
        gold = example.strict_gold if example.strict_gold is not None \
            else to_strict(example.gold, task.strict)
        strict = strict_counts(task.strict, gold, to_strict(record, task.strict))
    return {"strict": strict, "normalised": score_example(example.gold, record, task.schema)}


# --- built-in tasks ------------------------------------------------------------------------

def load_task(name: str) -> Task:
    """``doping`` | ``general:K`` | ``mof:K`` | ``jsonl:PATH`` | ``heldout:ADAPTER``."""
    kind, _, arg = name.partition(":")
    if kind == "doping" and not arg:
        return _doping_task(name)
    if kind in ENTRY_LAYOUT:
        if not arg.isdigit() or int(arg) >= nerre_data.N_FOLDS:
            raise TaskError(f"task {name!r} needs a fold number 0..{nerre_data.N_FOLDS - 1}",
                            hint=f"e.g. {kind}:0")
        return _entry_task(name, kind, int(arg))
    if kind == "jsonl" and arg:
        return load_jsonl_task(Path(arg), name=name)
    if kind == "heldout" and arg:
        return heldout_task(name, arg)
    raise TaskError(f"unknown task {name!r}")


def heldout_task(name: str, adapter: str) -> Task:
    """The training texts an adapter held out for validation: where pipeline options for a
    tuned model are chosen, so the test split is only ever used for reporting."""
    from extraction.models import adapter_card
    from finetune.data import training_split

    card = adapter_card(adapter)
    held_out = set(card.get("data", {}).get("validation_ids") or [])
    if not held_out:
        raise TaskError(f"adapter {adapter!r} has no held-out ids in its card",
                        hint="adapters trained by this version of 'matextract finetune' "
                             "record them")
    schema, positives, negatives = training_split(card["task"])
    scorer = schema if schema in STRICT_SCORERS else None
    examples = tuple(
        TaskExample(item.id, item.text, item.gold,
                    to_strict(item.gold, scorer) if scorer else None)
        for item in positives + negatives if item.id in held_out)
    few_shot = fold_few_shot(schema, int(card["task"].partition(":")[2])) \
        if ":" in card["task"] and schema in ENTRY_LAYOUT else get_schema(schema).examples
    return Task(name, schema, examples, _without_leaks(few_shot, examples), strict=scorer)


def _without_leaks(few_shot: Sequence[Example], examples: Sequence[TaskExample]
                   ) -> tuple[Example, ...]:
    scored = {e.text.strip() for e in examples}
    return tuple(x for x in few_shot if x.text.strip() not in scored)


def _doping_task(name: str) -> Task:
    examples: list[TaskExample] = []
    seen: dict[str, int] = {}
    for sentence in nerre_data.load_doping_sentences("test"):
        n = seen[sentence.doi] = seen.get(sentence.doi, -1) + 1
        examples.append(TaskExample(f"{sentence.doi}#{n}", sentence.text,
                                    doping_to_ours(sentence.gold), sentence.gold))
    return Task(name, "doping", tuple(examples),
                _without_leaks(get_schema("doping").examples, examples), strict="doping")


def fold_few_shot(schema: str, fold: int, *, count: int = FEWSHOT_PER_FOLD) -> tuple[Example, ...]:
    """The first ``count`` short training abstracts (300-700 chars, 1-2 entries, each named)
    of fold ``fold``: scripts/make_fewshot.py's rule, applied to that fold's train split."""
    _, _, fields = ENTRY_LAYOUT[schema]
    picked = []
    for line_no, line in enumerate(nerre_data.read_fold_lines(schema, fold, "train")):
        row = json.loads(line)
        text = row["prompt"].removesuffix(nerre_data.PROMPT_SUFFIX)
        entries = json.loads(row["completion"].strip().removesuffix("END").strip())
        if not 300 < len(text) < 700 or not 1 <= len(entries) <= 2:
            continue
        record = entries_to_ours(entries, schema)
        items = next(iter(record.values()))
        if not all(item[fields[0]] or item[fields[1]] for item in items):
            continue  # the schemas require a name or a formula for every entry
        picked.append(Example(text, record, f"nerre-{schema}-fold{fold}-train:line{line_no}"))
        if len(picked) == count:
            break
    return tuple(picked)


def _entry_task(name: str, schema: str, fold: int) -> Task:
    examples = tuple(
        TaskExample(f"{schema}-fold{fold}-val#{i}", e.abstract, entries_to_ours(e.entries, schema),
                    e.entries)
        for i, e in enumerate(nerre_data.load_entry_fold(schema, fold, split="val")))
    return Task(name, schema, examples, _without_leaks(fold_few_shot(schema, fold), examples),
                strict=schema)


# --- the generic JSONL format ----------------------------------------------------------------

def _resolve_schema(schema: str, folder: Path) -> str:
    if schema in builtin_names() or ":" in schema or Path(schema).exists():
        return schema
    beside = folder / schema
    return str(beside) if beside.exists() else schema


# Upper bounds in our schemas keep decoding finite; gold may exceed them (NERRE has lists of
# 11 guest species and 90-character formulas), so they do not make a gold record invalid.
_TOLERATED = frozenset({"too_long", "string_too_long"})


def _gold_problems(spec: Any, gold: Any) -> list[str]:
    records = gold if isinstance(gold, list) else [gold]
    if not records or not all(isinstance(r, dict) for r in records):
        return ["gold must be a record (JSON object) or a list of records"]
    problems = []
    for position, record in enumerate(records):
        try:
            spec.model.model_validate(record)
        except ValidationError as exc:
            where = f"gold[{position}]" if isinstance(gold, list) else "gold"
            problems += [f"{where}.{'.'.join(map(str, err['loc']))}: {err['msg']}"
                         for err in exc.errors() if err["type"] not in _TOLERATED]
    return problems


def load_jsonl_task(path: Path, *, name: str | None = None) -> Task:
    """Read and validate a task file; every bad line is reported as ``file:line: problem``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read the task file ({exc})") from exc
    problems: list[str] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}:{number}: a line must be a JSON object")
            continue
        missing = [k for k in ("text", "gold", "schema") if k not in row]
        if missing:
            problems.append(f"{path}:{number}: missing {', '.join(missing)}")
        elif not isinstance(row["text"], str) or not row["text"].strip():
            problems.append(f"{path}:{number}: text must be a non-empty string")
        else:
            rows.append((number, row))
    schemas = sorted({str(row["schema"]) for _, row in rows})
    if len(schemas) > 1:
        problems.append(f"{path}: every line needs the same schema, found {', '.join(schemas)}")
    spec = schema = None
    if len(schemas) == 1:
        schema = _resolve_schema(schemas[0], path.parent)
        try:
            spec = get_schema(schema)
        except MatextractError as exc:
            problems.append(f"{path}: schema {schemas[0]!r}: {exc.message}")
    examples: list[TaskExample] = []
    seen: set[str] = set()
    for number, row in rows:
        example_id = str(row.get("id", f"line{number}"))
        if example_id in seen:
            problems.append(f"{path}:{number}: duplicate id {example_id!r}")
        seen.add(example_id)
        if spec is None:
            continue
        bad = _gold_problems(spec, row["gold"])
        problems += [f"{path}:{number}: {p}" for p in bad]
        if not bad:
            gold = row["gold"] if isinstance(row["gold"], dict) else merge_records(row["gold"])
            examples.append(TaskExample(example_id, row["text"], gold or {}))
    if not problems and not rows:
        problems.append(f"{path}: no examples (one JSON object per line)")
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise TaskError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(shown)
                        + (f"\n  ... and {more} more" if more else ""),
                        hint='each line: {"id": "...", "text": "...", "gold": {...}, '
                             '"schema": "doping"}; see eval/README.md')
    assert spec is not None and schema is not None
    strict = schema if schema in STRICT_SCORERS else None
    return Task(name or f"jsonl:{path}", schema, tuple(examples),
                _without_leaks(spec.examples, examples), strict=strict)
