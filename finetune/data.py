"""Training pairs in exactly the pipeline's prompt format (shared code, never a copy)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from extraction import prompting
from extraction.errors import ConfigError
from extraction.schemas import SchemaSpec, get_schema
from extraction.schemas.base import Example


@dataclass(frozen=True)
class Annotated:
    """One annotated text from a training split."""

    id: str
    text: str
    gold: dict[str, Any]


@dataclass(frozen=True)
class Pair:
    """Token ids of one prompt and its target completion (loss is on the completion only)."""

    id: str
    prompt_ids: list[int]
    completion_ids: list[int]

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


def training_split(task: str) -> tuple[str, list[Annotated], list[Annotated]]:
    """(schema name, positives, negatives) from a task's TRAINING data only."""
    from eval import nerre_data
    from eval.tasks import doping_to_ours, entries_to_ours, load_jsonl_task

    if task == "doping":
        positives, negatives = [], []
        for number, sentence in enumerate(nerre_data.load_doping_sentences(
                "train", relevant_only=False)):
            gold = doping_to_ours(sentence.gold)
            item = Annotated(f"{sentence.doi}#{number}", sentence.text, gold)
            (positives if any(gold.values()) else negatives).append(item)
        return "doping", positives, negatives
    kind, _, fold = task.partition(":")
    if kind in ("general", "mof") and fold.isdigit():
        rows = nerre_data.load_entry_fold(kind, int(fold), split="train")
        items = [Annotated(f"{kind}:{fold}:train:{i}", row.abstract,
                           entries_to_ours(row.entries, kind)) for i, row in enumerate(rows)]
        return kind, items, []
    if kind == "jsonl":
        loaded = load_jsonl_task(Path(fold))
        items = [Annotated(str(e.id), e.text, e.gold) for e in loaded.examples]
        return loaded.schema, items, []
    raise ConfigError(f"unknown fine-tuning task {task!r}",
                      hint="use doping, general:K, mof:K (K = 0..4) or jsonl:PATH")


def fits_schema(spec: SchemaSpec, gold: dict[str, Any]) -> bool:
    """Targets the grammar could not produce (too long, too many items) teach nothing."""
    try:
        spec.model.model_validate(gold)
    except ValidationError:
        return False
    return True


def build_pairs(tokenizer: Any, task: str, *, few_shot: int, negatives: float,
                max_length: int, seed: int, limit: int | None = None
                ) -> tuple[list[Pair], dict[str, int]]:
    """Tokenised pairs (positives + a seeded sample of negatives) and counts for the card."""
    schema, positives, pool = training_split(task)
    spec = get_schema(schema)
    examples: tuple[Example, ...] = spec.examples[:few_shot]
    shot_texts = {e.text for e in examples}
    rng = random.Random(seed)
    chosen_negatives = rng.sample(pool, min(len(pool), int(round(negatives * len(positives)))))
    items = [a for a in positives + chosen_negatives if a.text not in shot_texts]
    counts = {"positives": len(positives), "negatives": len(chosen_negatives),
              "skipped_schema": 0, "skipped_length": 0}
    pairs = []
    for item in items:
        if not fits_schema(spec, item.gold):
            counts["skipped_schema"] += 1
            continue
        prompt, completion = prompting.training_text(tokenizer, spec, item.text, item.gold,
                                                     examples=examples)
        pair = Pair(item.id, tokenizer.encode(prompt, add_special_tokens=False),
                    tokenizer.encode(completion, add_special_tokens=False))
        if len(pair) > max_length:
            counts["skipped_length"] += 1
            continue
        pairs.append(pair)
    rng.shuffle(pairs)
    if limit is not None:
        pairs = pairs[:limit]
    counts["pairs"] = len(pairs)
    return pairs, counts


def split_validation(pairs: list[Pair], fraction: float) -> tuple[list[Pair], list[Pair]]:
    held_out = int(round(len(pairs) * fraction))
    return pairs[held_out:], pairs[:held_out]
