"""Training pairs in exactly the pipeline's prompt format (shared code, never a copy).

A task is one NERRE task or user file, or several (``multi:doping,general:0,mof:0``), each
text prompted with its own schema. Besides each annotated text's pair there can be pairs of
schema variants (``extraction.schemas.augment``) and retry pairs (``finetune.retry``); all
pairs made from one text share its id, so validation holds out texts, not pairs.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from extraction import prompting
from extraction.datasets.annotated import (MAX_EXCLUDED_SHARE, AnnotatedText,
                                           read_annotated_jsonl)
from extraction.datasets.splits import MULTI, task_parts, training_split
from extraction.errors import ConfigError, MatextractError
from extraction.schemas import get_schema
from extraction.schemas.augment import draw_variant
from extraction.schemas.base import Example, SchemaSpec, scalar_leaves
from extraction.schemas.bounds import learn_bounds, widened
from finetune.config import FinetuneConfig
from finetune.retry import make_retry, value_pool
from finetune.summary import DataSummary


@dataclass(frozen=True)
class Pair:
    """Token ids of one prompt and its target completion (loss is on the completion only)."""

    id: str  # the annotated text's (its variants and retry pair share it)
    prompt_ids: list[int]
    completion_ids: list[int]
    kind: str = "original"  # of PAIR_KINDS: original | silver | variant | retry

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


class ExcludedExamplesError(MatextractError):
    """Too many training examples would be left out."""


@dataclass(frozen=True)
class PairText:
    """One pair before tokenising: the schema its prompt shows, the text, the completion's
    record, the few-shot examples, and the feedback of a retry prompt."""

    id: str  # the annotated text's id (every pair made from it shares it)
    kind: str  # of PAIR_KINDS
    label: str  # names the pair in the summary: the id, plus ~variantK or ~retry
    spec: SchemaSpec
    text: str
    output: dict[str, Any]
    examples: tuple[Example, ...]
    feedback: tuple[str, ...] = ()


def build_pairs(tokenizer: Any, config: FinetuneConfig) -> tuple[list[Pair], DataSummary]:
    """Tokenised pairs of ``config.task`` (each part of a multi-schema task with its own
    schema in the prompt: positives, a seeded sample of negatives, ``schema_variants``
    variants of each, retry pairs for a ``retry_pairs`` share of the texts) and what was
    left out.

    Gold values longer than a schema allows raise its bounds (``summary.bounds``, used again
    at inference). ``max_length`` None: the budget is the longest pair. More than
    ``MAX_EXCLUDED_SHARE`` of the pairs excluded raises ``ExcludedExamplesError`` unless
    ``accept_exclusions``.
    """
    summary = DataSummary(config.task)
    rng = random.Random(config.seed)
    texts = [pair for part in task_parts(config.task)
             for pair in _part_texts(part, config, rng, summary)]
    built = []
    for item in texts:
        prompt, completion = prompting.training_text(tokenizer, item.spec, item.text,
                                                     item.output, examples=item.examples,
                                                     feedback=item.feedback)
        built.append((item, Pair(item.id, tokenizer.encode(prompt, add_special_tokens=False),
                                 tokenizer.encode(completion, add_special_tokens=False),
                                 kind=item.kind)))
    summary.max_length = config.max_length or max((len(p) for _, p in built), default=0)
    pairs = []
    for item, pair in built:
        if len(pair) > summary.max_length:
            summary.exclude(f"longer than max_length {summary.max_length} tokens", item.label)
        else:
            pairs.append(pair)
    _count(summary, pairs)
    if summary.excluded_share > MAX_EXCLUDED_SHARE and not config.accept_exclusions:
        raise ExcludedExamplesError(
            f"{summary.excluded_count} of {summary.candidates} training pairs "
            f"({summary.excluded_share:.1%}) would be left out:\n{summary.text()}",
            hint="raise --max-length (or leave it unset: the budget then fits the longest "
                 "example), fix the listed examples, or pass --accept-exclusions")
    if not pairs:
        raise ExcludedExamplesError(f"no training example is left:\n{summary.text()}",
                                    hint="raise --max-length or leave it unset")
    rng.shuffle(pairs)
    if config.limit is not None:
        pairs = pairs[:config.limit]
    _count(summary, pairs)
    return pairs, summary


def _part_texts(task: str, config: FinetuneConfig, rng: random.Random,
                summary: DataSummary) -> Iterator[PairText]:
    """The pairs of one single-schema task, before tokenising (counted in ``summary``)."""
    schema, positives, pool = training_split(task)
    silver = _silver_texts(config, schema)
    positives += [item for item in silver if any(scalar_leaves(item.gold))]
    pool += [item for item in silver if not any(scalar_leaves(item.gold))]
    silver_ids = {item.id for item in silver}
    base = get_schema(schema)
    if base.name in summary.bounds:
        raise ConfigError(f"{config.task!r}: two of its tasks have the schema {base.name!r}",
                          hint="a multi-schema task takes one task per schema")
    chosen_negatives = rng.sample(pool, min(len(pool),
                                            int(round(config.negatives * len(positives)))))
    bounds = learn_bounds(base, [a.gold for a in positives + chosen_negatives])
    spec = widened(base, bounds)
    summary.bounds[spec.name] = bounds
    examples: tuple[Example, ...] = spec.examples[:config.few_shot]
    shot_texts = {e.text for e in examples}
    items = [a for a in positives + chosen_negatives if a.text not in shot_texts]
    summary.examples += len(items)
    summary.positives += len(positives)
    summary.negatives += len(chosen_negatives)
    summary.empty_gold += sum(1 for a in items if not any(scalar_leaves(a.gold)))
    usable = [a for a in items if spec.accepts(a.gold)]
    usable_ids = {a.id for a in usable}
    summary.candidates += len(items) + len(usable) * config.schema_variants
    values = value_pool(a.gold for a in usable)
    retried = {a.id for a in random.Random(f"{config.seed}:retry:{task}").sample(
        usable, int(round(config.retry_pairs * len(usable))))}
    for item in items:
        if item.id not in usable_ids:
            summary.exclude("gold does not validate against the schema", item.id)
            continue
        yield PairText(item.id, "silver" if item.id in silver_ids else "original", item.id,
                       spec, item.text, item.gold, examples)
        for number in range(1, config.schema_variants + 1):
            variant = draw_variant(spec, random.Random(f"{config.seed}:{item.id}:{number}"))
            label = f"{item.id}~variant{number}"
            try:
                record = variant.record(item.gold)
                shots = tuple(dataclasses.replace(e, output=variant.record(e.output))
                              for e in examples)
            except ValidationError:  # a variant is built to fit its gold: never seen
                summary.exclude("gold does not fit its schema variant", label)
                continue
            summary.variant_changes.update(variant.changes)
            yield PairText(item.id, "variant", label, variant.spec, item.text, record, shots)
        if item.id in retried:
            retry, _ = make_retry(spec, item.text, item.gold,
                                  random.Random(f"{config.seed}:retry:{item.id}"), pool=values)
            if retry is None:
                summary.retry_unnoticed += 1
                continue
            summary.candidates += 1
            summary.retry_perturbations[retry.perturbation] += 1
            yield PairText(item.id, "retry", f"{item.id}~retry", spec, item.text, item.gold,
                           examples, tuple(retry.feedback))


def _silver_texts(config: FinetuneConfig, schema: str) -> list[AnnotatedText]:
    """The teacher-labelled texts of ``config.silver`` (ids prefixed ``silver:``, so that
    they never collide with the task's own)."""
    if config.silver is None:
        return []
    if config.task.startswith(MULTI):
        raise ConfigError("--silver adds texts to one task, not to a multi-schema task",
                          hint="train on a single task (e.g. --task doping) with --silver")
    loaded = read_annotated_jsonl(Path(config.silver))
    if get_schema(loaded.schema).name != get_schema(schema).name:
        raise ConfigError(f"{config.silver}: its schema is {loaded.schema!r}, the task's is "
                          f"{schema!r}", hint="label silver data for the task's own schema")
    return [dataclasses.replace(item, id=f"silver:{item.id}") for item in loaded.examples]


def _count(summary: DataSummary, pairs: list[Pair]) -> None:
    summary.pairs = len(pairs)
    summary.kinds = Counter(pair.kind for pair in pairs)
    summary.tokens = sum(len(p) for p in pairs)
    summary.longest = max((len(p) for p in pairs), default=0)


def document_of(pair_id: str) -> str:
    """The document a training text comes from (sentence ids are ``DOI#N``)."""
    return pair_id.split("#", 1)[0]


def split_validation(pairs: list[Pair], fraction: float, *, by_document: bool = False
                     ) -> tuple[list[Pair], list[Pair]]:
    """(train, validation): about ``fraction`` of the (shuffled) pairs, taken by whole texts
    (a text's variants and retry pair go with it), or by whole documents when
    ``by_document``, in their order of first appearance."""
    held_out = int(round(len(pairs) * fraction))
    group = document_of if by_document else (lambda pair_id: pair_id)
    sizes: dict[str, int] = {}
    for pair in pairs:
        sizes[group(pair.id)] = sizes.get(group(pair.id), 0) + 1
    chosen: set[str] = set()
    taken = 0
    for name, size in sizes.items():
        if taken >= held_out:
            break
        chosen.add(name)
        taken += size
    return ([p for p in pairs if group(p.id) not in chosen],
            [p for p in pairs if group(p.id) in chosen])
