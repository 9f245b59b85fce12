"""Training pairs in exactly the pipeline's prompt format (shared code, never a copy)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from extraction import prompting
from extraction.schemas import SchemaSpec, get_schema
from extraction.datasets.splits import training_split
from extraction.schemas.base import Example


@dataclass(frozen=True)
class Pair:
    """Token ids of one prompt and its target completion (loss is on the completion only)."""

    id: str
    prompt_ids: list[int]
    completion_ids: list[int]

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


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
