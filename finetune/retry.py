"""Retry pairs: teach a tuned model what to do with Reflexion's feedback.

An adapter that only ever saw first answers repeats its first answer when retried. A retry
pair shows it the retry prompt of the pipeline (the first conversation, the last user message
carrying the feedback on an earlier answer: ``reflexion.retry_feedback``) with the gold
record as the completion. The earlier answer is the gold with one mistake made on purpose (a
value dropped, a value added that is not in the text, a value moved to the wrong field, a
value misspelt or cut short, an empty answer although the text has values), and the feedback
is what the real evaluator (``reflexion.evaluate`` with a Grounder on the text) says about
it, so it is exactly what inference would show. A mistake the evaluator does not notice
gives no feedback and is not used; nor is one the grammar could not have written (an answer
that does not validate).
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from extraction import prompting
from extraction.checking import reflexion
from extraction.checking.grounding import Grounder
from extraction.schemas.base import SchemaSpec, scalar_leaves, string_leaves
from extraction.types import Document

PERTURBATIONS = ("drop", "add", "move", "misspell", "empty")

Path = tuple[Any, ...]  # keys and list indices from the record's root
Pool = dict[str, list[Any]]  # "hosts[]", "materials[].formula" -> values seen in the gold


@dataclass(frozen=True)
class Retry:
    """A flawed first answer and the feedback the retry prompt carries about it."""

    perturbation: str  # of PERTURBATIONS
    answer: dict[str, Any]  # the flawed first answer (valid under the schema)
    feedback: list[str]  # signals, then the reflection line, as at inference


def value_pool(golds: Iterable[Mapping[str, Any]]) -> Pool:
    """Every list item and string value of ``golds`` by its path pattern: where an added
    value comes from (another text's host, material entry, guest...)."""
    pool: Pool = {}
    for gold in golds:
        for pattern, value in _patterned(gold, ""):
            if value not in pool.setdefault(pattern, []):
                pool[pattern].append(value)
    return pool


def make_retry(spec: SchemaSpec, text: str, gold: Mapping[str, Any], rng: random.Random, *,
               pool: Pool, extractive: bool = True) -> tuple[Retry | None, list[str]]:
    """The first perturbation (in a seeded order) that the evaluator notices, and the
    perturbations tried that it did not notice or that did not apply.

    ``extractive`` (the pipeline's default): the grammar copies extractive fields from the
    text, so a value of theirs "not in the text" is a mistake inference never shows; such a
    signal alone does not make a retry pair."""
    grounder = Grounder(Document.from_text(text))
    # gold may draw signals itself (NERRE rewords applications): only new ones count
    already = set(_evaluated(spec, gold, text, grounder).signals)
    copied = set(spec.extractive_paths()) if extractive else set()
    unnoticed = []
    for kind in rng.sample(PERTURBATIONS, len(PERTURBATIONS)):
        answer = _PERTURB[kind](copy.deepcopy(dict(gold)), rng, pool, grounder)
        attempt = (_evaluated(spec, answer, text, grounder)
                   if answer is not None and answer != gold else None)
        if attempt is None or attempt.record is None \
                or not set(attempt.signals) - already - _impossible(attempt, copied):
            unnoticed.append(kind)
            continue
        attempt.reflection = reflexion.fallback_reflection(attempt)
        return Retry(kind, answer, reflexion.retry_feedback(attempt)), unnoticed
    return None, unnoticed


def _impossible(attempt: reflexion.Attempt, copied: set[str]) -> set[str]:
    """The attempt's signals about values "not in the text" in fields the grammar copies
    from the text (patterns such as ``hosts[]``, ``links[].host``)."""
    lines = set()
    for item, line in zip(attempt.ungrounded, _ungrounded_lines(attempt)):
        if re.sub(r"\[\d+\]", "[]", item.split(" = ", 1)[0]) in copied:
            lines.add(line)
    return lines


def _ungrounded_lines(attempt: reflexion.Attempt) -> list[str]:
    """The signal lines of ``attempt.ungrounded``, in order (``Attempt.signals`` writes them
    after the errors and the failed checks)."""
    start = len(attempt.errors) + len(attempt.inconsistent)
    return attempt.signals[start:start + len(attempt.ungrounded)]


def _evaluated(spec: SchemaSpec, answer: Mapping[str, Any], text: str,
               grounder: Grounder) -> reflexion.Attempt:
    """``answer`` as a first attempt, with the signals the pipeline's evaluator finds."""
    raw = prompting.compact_json(answer)
    checked, signals = reflexion.evaluate(spec, raw, text, grounder)
    return reflexion.Attempt(number=1, feedback=[], raw=raw, record=checked.record, **signals)


# --- paths in a record -----------------------------------------------------------------------

def _patterned(value: Any, pattern: str) -> Iterator[tuple[str, Any]]:
    """(pattern, value) for every list item and string below ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _patterned(item, f"{pattern}.{key}" if pattern else key)
    elif isinstance(value, list):
        for item in value:
            if item not in ("", None):
                yield f"{pattern}[]", item
            yield from _patterned(item, f"{pattern}[]")
    elif isinstance(value, str) and value.strip():
        yield pattern, value


def _places(value: Any, path: Path = (), pattern: str = "") -> Iterator[tuple[Path, str, Any]]:
    """(path, pattern, value) of every list and string in a record."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, (*path, key), f"{pattern}.{key}" if pattern else key)
    elif isinstance(value, list):
        yield path, f"{pattern}[]", value
        for index, item in enumerate(value):
            yield from _places(item, (*path, index), f"{pattern}[]")
    elif isinstance(value, str):
        yield path, pattern, value


def _at(record: Any, path: Path) -> Any:
    for step in path:
        record = record[step]
    return record


def _strings(record: Any) -> list[Path]:
    return [path for path, _, value in _places(record) if isinstance(value, str) and value.strip()]


def _any_string(record: Any, rng: random.Random) -> Path | None:
    paths = _strings(record)
    return rng.choice(paths) if paths else None


def _remove(record: Any, path: Path) -> None:
    """A list item goes; a string field is emptied."""
    parent = _at(record, path[:-1])
    if isinstance(parent, list):
        del parent[path[-1]]
    else:
        parent[path[-1]] = ""


def _pattern(path: Path) -> str:
    """``("materials", 0, "formula")`` -> ``materials[].formula``."""
    text = ""
    for step in path:
        text += "[]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _holds_strings(value: Any, pattern: str, pool: Pool) -> bool:
    """Whether ``value`` is a list of strings (an empty one: if the field's items seen in
    the gold are strings)."""
    if not isinstance(value, list):
        return False
    seen = value or pool.get(f"{pattern}[]", [])
    return bool(seen) and all(isinstance(item, str) for item in seen)


def _foreign(value: Any, grounder: Grounder) -> bool:
    """Whether ``value`` holds a string that is nowhere in the text."""
    return any(not grounder.locate(text) for _, text in string_leaves(value))


# --- the perturbations: each changes a copy of the gold, or returns None -------------------

Perturb = Callable[[dict[str, Any], random.Random, Pool, Grounder], "dict[str, Any] | None"]


def _drop(record: dict[str, Any], rng: random.Random, pool: Pool,
          grounder: Grounder) -> dict[str, Any] | None:
    """A value left out: a list item removed (sometimes its whole entry), or a field emptied."""
    path = _any_string(record, rng)
    if path is None:
        return None
    holder = _at(record, path[:-2]) if len(path) >= 2 else None
    if isinstance(holder, list) and isinstance(_at(record, path[:-1]), dict) \
            and rng.random() < 0.5:
        path = path[:-1]  # the whole entry (a link, a material) goes
    _remove(record, path)
    return record


def _add(record: dict[str, Any], rng: random.Random, pool: Pool,
         grounder: Grounder) -> dict[str, Any] | None:
    """A value that is not in the text: another text's value of the same field, appended to a
    list or written into an empty string field."""
    places = [(path, pattern, value) for path, pattern, value in _places(record)
              if pattern in pool and (isinstance(value, list) or value == "")]
    rng.shuffle(places)
    for path, pattern, value in places:
        candidates = [item for item in pool[pattern]
                      if _foreign(item, grounder) and (not isinstance(value, list)
                                                       or item not in value)]
        if not candidates:
            continue
        chosen = copy.deepcopy(rng.choice(candidates))
        if isinstance(value, list):
            value.append(chosen)
        else:
            _at(record, path[:-1])[path[-1]] = chosen
        return record
    return None


def _move(record: dict[str, Any], rng: random.Random, pool: Pool,
          grounder: Grounder) -> dict[str, Any] | None:
    """A value written in the wrong field of the same object: a dopant listed as a host, a
    link's host and dopant swapped, a formula given as the name."""
    paths = _strings(record)
    rng.shuffle(paths)
    for path in paths:
        in_list = isinstance(_at(record, path[:-1]), list)
        field_path = path[:-1] if in_list else path
        if len(field_path) < 1:
            continue
        owner, field = _at(record, field_path[:-1]), field_path[-1]
        if not isinstance(owner, dict):
            continue
        targets = [key for key, item in owner.items() if key != field and (
            isinstance(item, str) or _holds_strings(item, _pattern((*field_path[:-1], key)),
                                                    pool))]
        if not targets:
            continue
        target = rng.choice(targets)
        value = _at(record, path)
        if isinstance(owner[target], list):
            _remove(record, path)
            owner[target].append(value)
        elif not in_list:  # two string fields: swapped
            owner[field], owner[target] = owner[target], value
        else:
            _remove(record, path)
            owner[target] = value
        return record
    return None


def _misspell(record: dict[str, Any], rng: random.Random, pool: Pool,
              grounder: Grounder) -> dict[str, Any] | None:
    """A value copied wrongly: cut short, a character lost, or two characters swapped."""
    path = _any_string(record, rng)
    if path is None:
        return None
    value = _at(record, path)
    middle = max(1, len(value) // 2)
    spellings = [value[:middle], value[:middle] + value[middle + 1:],
                 value[:middle - 1] + value[middle:middle + 1] + value[middle - 1]
                 + value[middle + 1:]]
    changed = [s for s in spellings if s.strip() and s != value]
    if not changed:
        return None
    _at(record, path[:-1])[path[-1]] = rng.choice(changed)
    return record


def _empty(record: dict[str, Any], rng: random.Random, pool: Pool,
           grounder: Grounder) -> dict[str, Any] | None:
    """The shortest valid answer although the text has values: every list and string empty."""
    if not any(scalar_leaves(record)):
        return None

    def emptied(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: emptied(item) for key, item in value.items()}
        if isinstance(value, list):
            return []
        return "" if isinstance(value, str) else value

    return emptied(record)


_PERTURB: dict[str, Perturb] = {"drop": _drop, "add": _add, "move": _move,
                                "misspell": _misspell, "empty": _empty}
