"""What the training data holds and leaves out: printed before training (and by
``matextract finetune --dry-run``) and stored in the adapter card."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from extraction.schemas.bounds import Bounds

MAX_LISTED_IDS = 10
PAIR_KINDS = ("original", "silver", "variant", "retry")


@dataclass
class DataSummary:
    """Counts of one training set; a multi-schema task sums its tasks'."""

    task: str
    examples: int = 0  # annotated texts read (positives + chosen negatives)
    positives: int = 0
    negatives: int = 0  # sampled from the texts a task marks as having nothing to extract
    empty_gold: int = 0  # texts whose gold holds no value (they teach the empty answer)
    candidates: int = 0  # pairs that were to be built (before anything was left out)
    pairs: int = 0  # prompt + completion pairs built
    tokens: int = 0  # tokens over all pairs
    longest: int = 0  # tokens of the longest pair
    max_length: int = 0  # the budget pairs were held to
    # schema name -> bounds learnt from its gold, used at inference with that schema
    bounds: dict[str, Bounds] = field(default_factory=dict)
    kinds: Counter = field(default_factory=Counter)  # pairs by kind (PAIR_KINDS)
    variant_changes: Counter = field(default_factory=Counter)  # change -> variant pairs
    retry_perturbations: Counter = field(default_factory=Counter)  # mistake -> retry pairs
    retry_unnoticed: int = 0  # texts drawn for a retry pair where no mistake drew a signal
    excluded: dict[str, list[str]] = field(default_factory=dict)  # reason -> pair labels

    @property
    def excluded_count(self) -> int:
        return sum(len(ids) for ids in self.excluded.values())

    @property
    def excluded_share(self) -> float:
        return self.excluded_count / max(1, self.candidates)

    def exclude(self, reason: str, label: str) -> None:
        self.excluded.setdefault(reason, []).append(label)

    def counts(self) -> dict[str, Any]:
        """The card's "data" entry."""
        return {"examples": self.examples, "positives": self.positives,
                "negatives": self.negatives, "empty_gold": self.empty_gold,
                "pairs": self.pairs, "tokens": self.tokens,
                "pairs_by_kind": {kind: self.kinds[kind] for kind in PAIR_KINDS},
                "variant_changes": dict(self.variant_changes),
                "retry_perturbations": dict(self.retry_perturbations),
                "retry_without_signal": self.retry_unnoticed,
                "longest_pair_tokens": self.longest, "max_length": self.max_length,
                "excluded": {reason: len(ids) for reason, ids in self.excluded.items()},
                "excluded_ids": self.excluded,
                "learnt_bounds": {name: b.to_dict() for name, b in self.bounds.items()}}

    def text(self) -> str:
        lines = [f"training data ({self.task}): {self.examples} examples "
                 f"({self.examples - self.empty_gold} with values, {self.empty_gold} "
                 "without), "
                 f"{self.pairs} pairs, {self.tokens:,} tokens; longest pair {self.longest} "
                 f"tokens, budget {self.max_length}"]
        if any(self.kinds[kind] for kind in PAIR_KINDS if kind != "original"):
            lines.append("  pairs: " + ", ".join(f"{self.kinds[k]} {k}" for k in PAIR_KINDS))
        if self.variant_changes:
            lines.append("  schema variants: " + _listed(self.variant_changes))
        if self.retry_perturbations or self.retry_unnoticed:
            lines.append(f"  retry pairs by mistake: {_listed(self.retry_perturbations)}; "
                         f"{self.retry_unnoticed} drawn texts had no mistake the evaluator "
                         "noticed (left out)")
        for name, bounds in self.bounds.items():
            where = f"{name}: " if len(self.bounds) > 1 else ""
            for path, chars in bounds.strings.items():
                lines.append(f"  {where}string bound of {path} raised to {chars} characters "
                             "(gold values need it)")
            for path, items in bounds.arrays.items():
                lines.append(f"  {where}item bound of {path} raised to {items} (gold lists "
                             "need it)")
        for reason, ids in self.excluded.items():
            shown = ", ".join(ids[:MAX_LISTED_IDS]) + (" ..." if len(ids) > MAX_LISTED_IDS
                                                         else "")
            lines.append(f"  excluded {len(ids)}: {reason} ({shown})")
        if not self.excluded:
            lines.append("  no example excluded")
        return "\n".join(lines)


def _listed(counts: Counter) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.most_common()) or "none"
