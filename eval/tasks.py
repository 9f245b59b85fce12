"""Evaluation tasks: examples with gold in OUR record format, plus few-shot examples from the
task's own training data, and the converters to and from the strict scorers' shapes.

Task names: ``doping`` (the 77 scored test sentences), ``doping-abstracts`` (the 31 test
abstracts those sentences come from, whole), ``general:K`` / ``mof:K`` (fold K's validation
abstracts), ``jsonl:PATH`` (any annotated set, format in eval/README.md), ``heldout:ADAPTER``
and ``heldout-abstracts:ADAPTER`` (training texts the adapter held out, for choosing options).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.nerre_scoring import link_triplets, score_doping, score_entries
from eval.normalised import score_example
from extraction.datasets import nerre as nerre_data
from extraction.datasets.annotated import TaskError, read_annotated_jsonl
from extraction.datasets.nerre_format import ENTRY_SCHEMAS, DopingRecord
from extraction.datasets.conversion import (ENTRY_LAYOUT, doping_to_ours, doping_to_strict,
                                            entries_to_ours, merge_records, ours_to_entries,
                                            to_strict, union_doping)
from extraction.datasets.splits import task_parts, training_split
from extraction.models import adapter_card
from extraction.schemas import get_schema
from extraction.schemas.base import Example
from extraction.schemas.fewshot_choice import read_examples_file

# Re-exported: the names eval's callers and tests use for conversion and task errors.
__all__ = ["ENTRY_LAYOUT", "Task", "TaskError", "TaskExample", "doping_to_ours",
           "doping_to_strict", "entries_to_ours", "load_jsonl_task", "load_task",
           "merge_records", "ours_to_entries", "score_prediction", "strict_counts",
           "to_strict", "with_examples_file"]

STRICT_SCORERS = ("doping", "general", "mof")
FEWSHOT_PER_FOLD = 2


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
    # --examples: the annotated file few_shot came from (its texts are candidates, chosen per
    # configuration); None: few_shot is the task's own
    examples_file: str | None = None


# --- converters ---------------------------------------------------------------------------

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

def load_task(name: str, *, examples: Path | None = None) -> Task:
    """``doping`` | ``doping-abstracts`` | ``general:K`` | ``mof:K`` | ``jsonl:PATH`` |
    ``heldout:ADAPTER`` | ``heldout-abstracts:ADAPTER``; few-shot examples from the annotated
    file ``examples`` instead of the task's own (``with_examples_file``)."""
    task = _named_task(name)
    return task if examples is None else with_examples_file(task, examples)


def with_examples_file(task: Task, path: Path) -> Task:
    """``task`` with the texts of an annotated file (``--examples``, the task's schema) as its
    few-shot candidates; any that is (part of) a scored text is dropped."""
    kept = _without_leaks(read_examples_file(path, schema=task.schema), task.examples)
    if not kept:
        raise TaskError(f"--examples {path}: every text in it is also a scored text of task "
                        f"{task.name!r}",
                        hint="few-shot examples must come from training texts, not the test set")
    return dataclasses.replace(task, few_shot=kept, examples_file=str(path))


def _named_task(name: str) -> Task:
    kind, _, arg = name.partition(":")
    if kind == "doping" and not arg:
        return _doping_task(name)
    if kind == "doping-abstracts" and not arg:
        return _doping_abstracts_task(name, nerre_data.load_doping_abstracts_annotated("test"))
    if kind == "heldout-abstracts" and arg:
        return heldout_abstracts_task(name, arg)
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
    tuned model are chosen, so the test split is only ever used for reporting.

    A multi-schema adapter's held-out texts are scored one task at a time:
    ``heldout:ADAPTER@general:0``."""
    adapter, _, part = adapter.partition("@")
    card = adapter_card(adapter)
    held_out = set(card.get("data", {}).get("validation_ids") or [])
    if not held_out:
        raise TaskError(f"adapter {adapter!r} has no held-out ids in its card",
                        hint="adapters trained by this version of 'matextract finetune' "
                             "record them")
    parts = task_parts(card["task"])
    if (part or len(parts) > 1) and part not in parts:
        raise TaskError(f"adapter {adapter!r} was trained on {card['task']!r}: name one of "
                        f"its tasks to score its held-out texts of",
                        hint=" | ".join(f"heldout:{adapter}@{p}" for p in parts))
    task = part or parts[0]
    schema, positives, negatives = training_split(task)
    scorer = schema if schema in STRICT_SCORERS else None
    examples = tuple(
        TaskExample(item.id, item.text, item.gold,
                    to_strict(item.gold, scorer) if scorer else None)
        for item in positives + negatives if item.id in held_out)
    kind, _, fold = task.partition(":")
    # a fold of general/mof: that fold's examples; a jsonl: task (any schema): the schema's
    few_shot = fold_few_shot(schema, int(fold)) if kind in ENTRY_LAYOUT and fold.isdigit() \
        else get_schema(schema).examples
    return Task(name, schema, examples, _without_leaks(few_shot, examples), strict=scorer)


def heldout_abstracts_task(name: str, adapter: str) -> Task:
    """The training abstracts none of whose sentences an adapter trained on (all held out
    for validation): abstract-level option choices without touching the test set."""
    card = adapter_card(adapter)
    if card.get("task") != "doping":
        raise TaskError(f"adapter {adapter!r} was not trained on the doping task",
                        hint="heldout-abstracts:ADAPTER needs a doping adapter")
    held_out = set(card.get("data", {}).get("validation_documents") or [])
    abstracts = [a for a in nerre_data.load_doping_abstracts_annotated("train")
                 if a.sentences and a.doi in held_out]
    if not abstracts:
        raise TaskError(f"adapter {adapter!r} held out no whole training abstract (its "
                        "held-out sentences are spread over abstracts it trained on)",
                        hint="train with 'matextract finetune --holdout-by-document' to hold "
                             "out whole abstracts")
    return _doping_abstracts_task(name, abstracts)


def _doping_abstracts_task(name: str, abstracts: Sequence[nerre_data.DopingAbstract]) -> Task:
    """Whole abstracts; gold = the union of their scored sentences' graphs."""
    examples = []
    for abstract in abstracts:
        gold = union_doping([s.gold for s in abstract.sentences])
        examples.append(TaskExample(abstract.doi, abstract.text, doping_to_ours(gold), gold))
    return Task(name, "doping", tuple(examples),
                _without_leaks(get_schema("doping").examples, examples), strict="doping")


def _without_leaks(few_shot: Sequence[Example], examples: Sequence[TaskExample]
                   ) -> tuple[Example, ...]:
    """Few-shot examples that are not (part of) a scored text."""
    return tuple(x for x in few_shot
                 if not any(x.text.strip() in e.text for e in examples))


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

def load_jsonl_task(path: Path, *, name: str | None = None,
                    examples: Path | None = None) -> Task:
    """A user's annotated JSONL file as a task (format in eval/README.md). Few-shot examples:
    from the annotated file ``examples`` (training texts), else the schema's own (a JSON
    Schema file's ``examples``); never a scored line."""
    loaded = read_annotated_jsonl(path)
    scored = tuple(TaskExample(e.id, e.text, e.gold) for e in loaded.examples)
    strict = loaded.schema if loaded.schema in STRICT_SCORERS else None
    task = Task(name or f"jsonl:{path}", loaded.schema, scored,
                _without_leaks(get_schema(loaded.schema).examples, scored), strict=strict)
    return task if examples is None else with_examples_file(task, examples)
