"""The evidence a value's confidence is computed from (its *features*), per output value.

- ``mean``, ``low``, ``first``: log-probabilities of the value's own tokens where an answer
  first wrote it (``tokens.ValueScore``; the best-scoring unit when several did). The first
  time counts because that is where the model decided on it: a doping link repeating a host
  listed before copies it at near certainty, right or wrong;
- ``words``: how many words the value has (at most 5): long values are often descriptions
  ("ZnO thin films") where the annotators wrote the material;
- ``grounded``: 1 when the value was found in the document;
- ``revised``: 1 when it appeared only after a Reflexion retry (the first answer lacked it);
- ``agreement``: of the units (sentences, windows) whose text mentions the value, the share
  whose answer holds it in the same field (1 for a one-unit document that found it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from extraction.checking.grounding import normalise
from extraction.confidence.tokens import ValueScore, string_value_spans
from extraction.schemas.base import without_positions
from extraction.types import Evidence

FEATURES = ("mean", "low", "first", "words", "grounded", "revised", "agreement")
MAX_WORDS = 5
# Log-probabilities are clipped here: a value no answer spelled (rare: a merge respelled it)
# gets it too, as the least likely score.
FLOOR = -10.0

Key = tuple[str, str]  # (field path without list positions, normalised value)


def value_key(path: str, value: str) -> Key:
    return without_positions(path), normalise(value)


@dataclass
class UnitAnswer:
    """What one unit (sentence, window) contributed: its text, the chosen answer's values
    (field and value), the score of each normalised value where the answer first wrote it,
    and the values its first answer already held."""

    text: str
    keys: set[Key] = field(default_factory=set)
    scores: dict[str, ValueScore] = field(default_factory=dict)
    first_keys: set[Key] = field(default_factory=set)
    retried: bool = False  # the chosen answer came from a retry

    @classmethod
    def from_attempts(cls, text: str, chosen_raw: str, chosen_scores: Mapping[str, dict],
                      first_raw: str, retried: bool) -> UnitAnswer:
        """From the chosen attempt's raw answer and its ``value_scores`` (by path), and the
        first attempt's raw answer."""
        written = string_value_spans(chosen_raw)
        scores: dict[str, ValueScore] = {}
        for path, _, _, value in written:
            if path in chosen_scores:
                scores.setdefault(normalise(value), ValueScore.from_dict(chosen_scores[path]))
        firsts = {value_key(path, value) for path, _, _, value in string_value_spans(first_raw)}
        return cls(normalise(text), {value_key(path, value) for path, _, _, value in written},
                   scores, firsts, retried)


def features(item: Evidence, units: Sequence[UnitAnswer]) -> dict[str, float]:
    """The features of one output value, from the units of its document."""
    key = value_key(item.where.path, item.value)
    holders = [unit for unit in units if key in unit.keys]
    best = max((unit.scores[key[1]] for unit in holders if key[1] in unit.scores),
               key=lambda score: score.mean, default=None)
    mention = re.compile(rf"(?<!\w){re.escape(key[1])}(?!\w)") if key[1] else None
    mentioning = [unit for unit in units if mention and mention.search(unit.text)]
    agreeing = [unit for unit in mentioning if key in unit.keys]
    revised = bool(holders) and all(unit.retried and key not in unit.first_keys
                                    for unit in holders)
    return {
        "mean": max(best.mean, FLOOR) if best else FLOOR,
        "low": max(best.low, FLOOR) if best else FLOOR,
        "first": max(best.first, FLOOR) if best else FLOOR,
        "words": float(min(len(item.value.split()), MAX_WORDS)),
        "grounded": float(item.grounded),
        "revised": float(revised),
        "agreement": len(agreeing) / len(mentioning) if mentioning else 0.0,
    }
