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

from extraction.checking.grounding import Grounder
from extraction.schemas.base import SchemaSpec, scalar_leaves, string_leaves
from extraction.checking.validation import Validated, validate


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
    """Top-level fields left empty although a cue in the text shows they should not be.

    Empty: no value anywhere below the field, so ``[{"host": null}]`` is as empty as ``[]``
    (a model holding on to the shortest valid answer writes either)."""
    cues: dict[str, str] = spec.extra.get("cues", {})
    if not isinstance(parsed, dict):
        return []
    problems = []
    for field_name, pattern in cues.items():
        if any(True for _ in scalar_leaves(parsed.get(field_name))):
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
# The batched forms: one call per round for every text still being worked on.
GenerateManyFn = Callable[[Sequence[tuple[str, Sequence[str]]]], list[tuple[str, dict[str, Any]]]]
ReflectManyFn = Callable[[Sequence[tuple[str, "Attempt"]]], list[str]]
CritiqueManyFn = Callable[[Sequence[tuple[str, str]]], list[str]]


@dataclass
class Trial:
    """One text's Reflexion loop, kept between rounds."""

    text: str
    grounder: Grounder
    attempts: list[Attempt] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    done: bool = False

    def best(self) -> Attempt:
        return max(self.attempts, key=lambda a: a.score())  # max keeps the first of equals


def run_many(spec: SchemaSpec, trials: Sequence[Trial], *, generate: GenerateManyFn,
             max_attempts: int = 2, reflect: ReflectManyFn | None = None,
             critique: CritiqueManyFn | None = None,
             firsts: Sequence[tuple[str, dict[str, Any]]] | None = None) -> None:
    """Attempt, evaluate, reflect, retry, for many texts in rounds: each round asks for all
    its answers (then all its reflections) in one call, so a batching model decodes them
    together instead of one text at a time. Each text's loop is the same as alone.

    ``firsts``: first answers already generated (raw, stats), one per trial.
    """
    for number in range(1, max_attempts + 1):
        running = [trial for trial in trials if not trial.done]
        if not running:
            break
        answers = (firsts if number == 1 and firsts is not None
                   else generate([(trial.text, trial.feedback) for trial in running]))
        for trial, (raw, stats) in zip(running, answers, strict=True):
            checked, signals = evaluate(spec, raw, trial.text, trial.grounder)
            trial.attempts.append(Attempt(number=number, feedback=list(trial.feedback), raw=raw,
                                          record=checked.record, generation=stats, **signals))
        if critique is not None:
            judged = [trial for trial in running if trial.attempts[-1].record is not None]
            verdicts = critique([(trial.text, trial.attempts[-1].raw) for trial in judged])
            for trial, verdict in zip(judged, verdicts, strict=True):
                trial.attempts[-1].critique = verdict
        retrying = [trial for trial in running
                    if trial.attempts[-1].signals and number < max_attempts]
        for trial in running:
            trial.done = trial not in retrying
        reflections = (reflect([(trial.text, trial.attempts[-1]) for trial in retrying])
                       if reflect is not None and retrying else [None] * len(retrying))
        for trial, reflection in zip(retrying, reflections, strict=True):
            attempt = trial.attempts[-1]
            attempt.reflection = reflection
            trial.feedback = retry_feedback(attempt)


def retry_feedback(attempt: Attempt) -> list[str]:
    """The lines the next attempt's prompt carries about ``attempt``: its signals, then its
    reflection (fine-tuning's retry pairs are built with this too)."""
    return attempt.signals + ([f"Reflection: {attempt.reflection}"] if attempt.reflection
                              else [])


def fallback_reflection(attempt: Attempt) -> str:
    """The reflection written for the model when it wrote nothing usable."""
    return f"I must fix this: {attempt.signals[0]}"


def run(spec: SchemaSpec, text: str, grounder: Grounder, *, generate: GenerateFn,
        max_attempts: int = 2, reflect: ReflectFn | None = None,
        critique: CritiqueFn | None = None,
        first: tuple[str, dict[str, Any]] | None = None) -> tuple[Attempt, list[Attempt]]:
    """Attempt, evaluate, reflect, retry for one text; return (best attempt, all attempts).

    ``first`` is a first answer (raw, stats) already generated; retries call ``generate``.
    """
    trial = Trial(text, grounder)
    run_many(spec, [trial], generate=lambda items: [generate(fb) for _, fb in items],
             max_attempts=max_attempts,
             reflect=(lambda items: [reflect(a) for _, a in items]) if reflect else None,
             critique=(lambda items: [critique(raw) for _, raw in items]) if critique else None,
             firsts=[first] if first is not None else None)
    return trial.best(), trial.attempts
