"""Training pairs in exactly the pipeline's prompt format (shared code, never a copy)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from extraction import prompting
from extraction.schemas import get_schema
from extraction.datasets.annotated import MAX_EXCLUDED_SHARE
from extraction.datasets.splits import training_split
from extraction.errors import MatextractError
from extraction.schemas.base import Example, scalar_leaves
from extraction.schemas.bounds import Bounds, learn_bounds, widened


@dataclass(frozen=True)
class Pair:
    """Token ids of one prompt and its target completion (loss is on the completion only)."""

    id: str
    prompt_ids: list[int]
    completion_ids: list[int]

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


MAX_LISTED_IDS = 10


class ExcludedExamplesError(MatextractError):
    """Too many training examples would be left out."""


@dataclass
class DataSummary:
    """What training will use and what it leaves out, and why: printed before training
    and stored in the adapter card."""

    task: str
    examples: int = 0  # annotated texts read (positives + chosen negatives)
    positives: int = 0
    negatives: int = 0  # sampled from the texts a task marks as having nothing to extract
    empty_gold: int = 0  # texts whose gold holds no value (they teach the empty answer)
    pairs: int = 0  # prompt + completion pairs built
    tokens: int = 0  # tokens over all pairs
    longest: int = 0  # tokens of the longest pair
    max_length: int = 0  # the budget pairs were held to
    bounds: Bounds = field(default_factory=Bounds)  # learnt from the gold, used at inference
    excluded: dict[str, list[str]] = field(default_factory=dict)  # reason -> example ids

    @property
    def excluded_count(self) -> int:
        return sum(len(ids) for ids in self.excluded.values())

    @property
    def excluded_share(self) -> float:
        return self.excluded_count / max(1, self.examples)

    def counts(self) -> dict[str, Any]:
        """The card's "data" entry."""
        return {"examples": self.examples, "positives": self.positives,
                "negatives": self.negatives, "empty_gold": self.empty_gold, "pairs": self.pairs, "tokens": self.tokens,
                "longest_pair_tokens": self.longest, "max_length": self.max_length,
                "excluded": {reason: len(ids) for reason, ids in self.excluded.items()},
                "excluded_ids": self.excluded, "learnt_bounds": self.bounds.to_dict()}

    def text(self) -> str:
        lines = [f"training data ({self.task}): {self.examples} examples "
                 f"({self.examples - self.empty_gold} with values, {self.empty_gold} "
                 "without), "
                 f"{self.pairs} pairs, {self.tokens:,} tokens; longest pair {self.longest} "
                 f"tokens, budget {self.max_length}"]
        for path, chars in self.bounds.strings.items():
            lines.append(f"  string bound of {path} raised to {chars} characters (gold values "
                         "need it)")
        for path, items in self.bounds.arrays.items():
            lines.append(f"  item bound of {path} raised to {items} (gold lists need it)")
        for reason, ids in self.excluded.items():
            shown = ", ".join(ids[:MAX_LISTED_IDS]) + (" ..." if len(ids) > MAX_LISTED_IDS
                                                         else "")
            lines.append(f"  excluded {len(ids)}: {reason} ({shown})")
        if not self.excluded:
            lines.append("  no example excluded")
        return "\n".join(lines)


def build_pairs(tokenizer: Any, task: str, *, few_shot: int, negatives: float,
                max_length: int | None, seed: int, limit: int | None = None,
                accept_exclusions: bool = False) -> tuple[list[Pair], DataSummary]:
    """Tokenised pairs (positives + a seeded sample of negatives) and what was left out.

    Gold values longer than the schema allows raise its bounds (``summary.bounds``, used
    again at inference). ``max_length`` None: the budget is the longest pair. More than
    ``MAX_EXCLUDED_SHARE`` of the examples excluded raises ``ExcludedExamplesError`` unless
    ``accept_exclusions``.
    """
    schema, positives, pool = training_split(task)
    base = get_schema(schema)
    rng = random.Random(seed)
    chosen_negatives = rng.sample(pool, min(len(pool), int(round(negatives * len(positives)))))
    bounds = learn_bounds(base, [a.gold for a in positives + chosen_negatives])
    spec = widened(base, bounds)
    examples: tuple[Example, ...] = spec.examples[:few_shot]
    shot_texts = {e.text for e in examples}
    items = [a for a in positives + chosen_negatives if a.text not in shot_texts]
    summary = DataSummary(task, examples=len(items), positives=len(positives),
                          negatives=len(chosen_negatives), bounds=bounds,
                          empty_gold=sum(1 for a in items if not any(scalar_leaves(a.gold))))
    built = []
    for item in items:
        if not spec.accepts(item.gold):
            summary.excluded.setdefault("gold does not validate against the schema",
                                        []).append(item.id)
            continue
        prompt, completion = prompting.training_text(tokenizer, spec, item.text, item.gold,
                                                     examples=examples)
        built.append(Pair(item.id, tokenizer.encode(prompt, add_special_tokens=False),
                          tokenizer.encode(completion, add_special_tokens=False)))
    summary.max_length = max_length or max((len(p) for p in built), default=0)
    pairs = []
    for pair in built:
        if len(pair) > summary.max_length:
            summary.excluded.setdefault(f"longer than max_length {summary.max_length} tokens",
                                        []).append(pair.id)
        else:
            pairs.append(pair)
    _count(summary, pairs)
    if summary.excluded_share > MAX_EXCLUDED_SHARE and not accept_exclusions:
        raise ExcludedExamplesError(
            f"{summary.excluded_count} of {summary.examples} training examples "
            f"({summary.excluded_share:.1%}) would be left out:\n{summary.text()}",
            hint="raise --max-length (or leave it unset: the budget then fits the longest "
                 "example), fix the listed examples, or pass --accept-exclusions")
    if not pairs:
        raise ExcludedExamplesError(f"no training example is left:\n{summary.text()}",
                                    hint="raise --max-length or leave it unset")
    rng.shuffle(pairs)
    if limit is not None:
        pairs = pairs[:limit]
    _count(summary, pairs)
    return pairs, summary


def _count(summary: DataSummary, pairs: list[Pair]) -> None:
    summary.pairs = len(pairs)
    summary.tokens = sum(len(p) for p in pairs)
    summary.longest = max((len(p) for p in pairs), default=0)


def document_of(pair_id: str) -> str:
    """The document a training text comes from (sentence ids are ``DOI#N``)."""
    return pair_id.split("#", 1)[0]


def split_validation(pairs: list[Pair], fraction: float, *, by_document: bool = False
                     ) -> tuple[list[Pair], list[Pair]]:
    """(train, validation): the first ``fraction`` of the (shuffled) pairs, or of whole
    documents in their order of first appearance when ``by_document``."""
    held_out = int(round(len(pairs) * fraction))
    if not by_document:
        return pairs[held_out:], pairs[:held_out]
    sizes: dict[str, int] = {}
    for pair in pairs:
        sizes[document_of(pair.id)] = sizes.get(document_of(pair.id), 0) + 1
    chosen: set[str] = set()
    for document, size in sizes.items():
        if sum(sizes[d] for d in chosen) >= held_out:
            break
        chosen.add(document)
    return ([p for p in pairs if document_of(p.id) not in chosen],
            [p for p in pairs if document_of(p.id) in chosen])
