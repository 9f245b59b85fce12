"""Choosing an adapter's Reflexion attempts on held-out data.

A retry costs about as much as the first answer; it is worth it only where it helps. From a
results folder of ``matextract eval --task heldout:ADAPTER --set max_attempts=1,2``, each
adapter's (and schema's) fewest attempts are kept unless more add at least ``MIN_GAIN`` F1
(the headline F1: strict where the task has a strict scorer, else normalised). The choice is
written into the adapter's card (``inference.max_attempts``), which inference then uses when
``--attempts`` is not given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eval.report import summarise
from extraction.errors import ConfigError
from extraction.models import adapter_card, card_schemas, is_multi_schema, update_card

MIN_GAIN = 0.02  # F1 more attempts must add to be kept
HELDOUT_TASKS = ("heldout:", "heldout-abstracts:")


@dataclass(frozen=True)
class AttemptsChoice:
    """The attempts chosen for one adapter and schema, and the F1 each count scored."""

    adapter: str
    schema: str
    task: str
    f1: dict[int, float]  # attempts -> headline F1
    kind: str  # "strict" | "normalised"
    chosen: int

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "f1": {str(k): round(v, 4) for k, v in self.f1.items()},
                "f1_kind": self.kind, "rule": f"fewest attempts unless more add >= {MIN_GAIN} F1",
                "chosen": self.chosen}


def fewest_worth_it(f1: Mapping[int, float], *, min_gain: float = MIN_GAIN) -> int:
    """The fewest attempts, unless a larger count adds at least ``min_gain`` F1 over the
    current choice (then that count, and so on upwards)."""
    counts = sorted(f1)
    chosen = counts[0]
    for count in counts[1:]:
        if f1[count] - f1[chosen] >= min_gain:
            chosen = count
    return chosen


def choose_attempts(runs: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]
                    ) -> list[AttemptsChoice]:
    """One choice per (adapter, schema, other options) among the runs of a results folder
    that differ in ``max_attempts``; only held-out tasks count (never a test split)."""
    groups: dict[tuple, dict[int, tuple[float, str]]] = {}
    for meta, lines in runs:
        config = meta.get("config", {})
        task = str(meta.get("task", ""))
        if not config.get("adapter") or not lines:
            continue
        if not task.startswith(HELDOUT_TASKS):
            raise ConfigError(f"run {meta.get('id')} is on task {task!r}: attempts are chosen "
                              "on an adapter's held-out texts only",
                              hint="run eval with --task heldout:ADAPTER --set max_attempts=1,2")
        summary = summarise(meta, lines)
        kind = "strict" if summary["headline_f1"]["strict"] is not None else "normalised"
        f1 = summary["headline_f1"][kind]
        others = tuple(sorted((k, str(v)) for k, v in meta.get("options", {}).items()
                              if k != "max_attempts"))
        key = (config["adapter"], summary["schema"], task, others)
        groups.setdefault(key, {})[int(config["max_attempts"])] = (
            0.0 if f1 is None or math.isnan(f1) else float(f1), kind)
    choices = []
    for (adapter, schema, task, _), scored in groups.items():
        if len(scored) < 2:
            continue
        f1 = {count: value for count, (value, _) in sorted(scored.items())}
        choices.append(AttemptsChoice(adapter, schema, task, f1, next(iter(scored.values()))[1],
                                      fewest_worth_it(f1)))
    if not choices:
        raise ConfigError("no adapter was run with more than one max_attempts value here",
                          hint="run eval with --task heldout:ADAPTER --set max_attempts=1,2")
    return choices


def store_choice(choice: AttemptsChoice, *, results: str) -> str:
    """Write the choice into the adapter's card: a multi-schema adapter's entry for the
    schema when it was trained on it, else the card's own setting. Returns the card path."""
    card = adapter_card(choice.adapter)
    per_schema = is_multi_schema(card) and choice.schema in card_schemas(card)

    def edit(card: dict[str, Any]) -> None:
        inference = card.setdefault("inference", {})
        where = (inference.setdefault("schemas", {}).setdefault(choice.schema, {})
                 if per_schema else inference)
        where["max_attempts"] = choice.chosen
        where["max_attempts_choice"] = {**choice.to_dict(), "results": results}

    return str(update_card(choice.adapter, edit))
