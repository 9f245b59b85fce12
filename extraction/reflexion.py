"""Reflexion-style self-check: evaluate an attempt, have the model reflect, retry (bounded).

After each attempt an evaluator collects signals: schema validation errors, string values not
found in the source, fields left empty although the source clearly fills them, and optionally
the model's own yes/no verdict. If there are signals, the model writes a short reflection; the
signals and the reflection go into the next attempt's prompt. The best attempt wins and every
attempt is kept in the trace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from extraction.grounding import Grounder
from extraction.schemas.base import SchemaSpec, string_leaves
from extraction.validation import Validated, validate


@dataclass
class Attempt:
    """One try at extracting from one text, with everything the evaluator said about it."""

    number: int
    feedback: list[str]  # lines that went into this attempt's prompt (empty for the first)
    raw: str
    record: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)  # validation errors
    inconsistent: list[str] = field(default_factory=list)  # failed semantic checks
    ungrounded: list[str] = field(default_factory=list)  # "path = value" not in the source
    missing: list[str] = field(default_factory=list)  # empty fields the source clearly fills
    critique: str | None = None  # the model's yes/no verdict, when asked
    reflection: str | None = None  # what the model wrote about this attempt
    generation: dict[str, Any] = field(default_factory=dict)

    @property
    def signals(self) -> list[str]:
        lines = list(self.errors) + list(self.inconsistent)
        lines += [f"{item} does not appear in the text; copy values exactly"
                  for item in self.ungrounded]
        lines += list(self.missing)
        if self.critique == "no":
            lines.append("on checking, you judged this answer incorrect or incomplete")
        return lines

    def score(self) -> tuple[int, int, int, int, int, int]:
        """Higher is better: valid first, then fewer problems of each kind."""
        return (int(self.record is not None), -len(self.errors), -len(self.inconsistent),
                -len(self.ungrounded), -len(self.missing), int(self.critique != "no"))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["signals"] = self.signals
        return data


def find_ungrounded(record: Any, grounder: Grounder) -> list[str]:
    return [f"{path} = {value!r}" for path, value in string_leaves(record)
            if not grounder.locate(value)]


def find_missing(spec: SchemaSpec, parsed: Any, text: str) -> list[str]:
    """Fields left empty although a cue in the text shows they should not be."""
    cues: dict[str, str] = spec.extra.get("cues", {})
    if not isinstance(parsed, dict):
        return []
    problems = []
    for field_name, pattern in cues.items():
        if parsed.get(field_name):
            continue
        match = re.search(pattern, text)
        if match:
            problems.append(f"{field_name} is empty but the text mentions {match.group(0)!r}")
    return problems


def evaluate(spec: SchemaSpec, raw: str, text: str, grounder: Grounder) -> tuple[Validated, dict]:
    """Signals for one answer (validation, grounding, cues); no model calls."""
    checked = validate(spec, raw)
    value = checked.record if checked.valid else checked.parsed
    signals = {
        "errors": checked.errors,
        "inconsistent": checked.problems,
        "ungrounded": find_ungrounded(value, grounder) if value is not None else [],
        "missing": find_missing(spec, value, text) if value is not None else [],
    }
    return checked, signals


GenerateFn = Callable[[Sequence[str]], tuple[str, dict[str, Any]]]
CritiqueFn = Callable[[str], str]
ReflectFn = Callable[["Attempt"], str]


def run(spec: SchemaSpec, text: str, grounder: Grounder, *, generate: GenerateFn,
        max_attempts: int = 2, reflect: ReflectFn | None = None,
        critique: CritiqueFn | None = None,
        first: tuple[str, dict[str, Any]] | None = None) -> tuple[Attempt, list[Attempt]]:
    """Attempt, evaluate, reflect, retry; return (best attempt, all attempts).

    ``first`` is a first answer (raw, stats) already generated, e.g. in a batch with other
    texts' first answers; retries still call ``generate``.
    """
    attempts: list[Attempt] = []
    feedback: list[str] = []
    for number in range(1, max_attempts + 1):
        raw, stats = first if (number == 1 and first is not None) else generate(feedback)
        checked, signals = evaluate(spec, raw, text, grounder)
        attempt = Attempt(number=number, feedback=list(feedback), raw=raw,
                          record=checked.record, generation=stats, **signals)
        if critique is not None and checked.valid:
            attempt.critique = critique(raw)
        attempts.append(attempt)
        if not attempt.signals or number == max_attempts:
            break
        attempt.reflection = reflect(attempt) if reflect is not None else None
        feedback = attempt.signals + ([f"Reflection: {attempt.reflection}"]
                                      if attempt.reflection else [])
    best = max(attempts, key=lambda a: a.score())  # max keeps the first of equals
    return best, attempts
