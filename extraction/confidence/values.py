"""Confidence for every value of a document's result: the pipeline's last step, after the
unit records were merged and evidence was found."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from extraction.checking.reflexion import Trial
from extraction.confidence.calibration import Calibration, raw_confidence
from extraction.confidence.signals import UnitAnswer, features
from extraction.types import Evidence

DIGITS = 3  # confidences are written rounded: batched arithmetic differs in the last bits


def unit_answers(trials: Sequence[Trial]) -> list[UnitAnswer]:
    """Each unit's chosen answer with its value scores (units with no valid answer add
    nothing but still count as having seen their text)."""
    units = []
    for trial in trials:
        best = trial.best()
        units.append(UnitAnswer.from_attempts(
            trial.text, best.raw if best.record is not None else "",
            best.generation.get("value_scores", {}), trial.attempts[0].raw,
            retried=best.number > 1))
    return units


def with_confidence(items: Sequence[Evidence], units: Sequence[UnitAnswer],
                    calibration: Calibration | None) -> list[Evidence]:
    """``items`` with their confidence (calibrated when a calibration is given) and the
    features it came from."""
    out = []
    for item in items:
        found = features(item, units)
        score = calibration.confidence(found) if calibration else raw_confidence(found)
        out.append(dataclasses.replace(item, confidence=round(score, DIGITS), features=found))
    return out
