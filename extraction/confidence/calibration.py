"""From features to a calibrated probability that a value is right, and how to measure it.

A calibration is a logistic regression over ``signals.FEATURES`` (Platt scaling with more
than one input), fitted on held-out data where each value is known right or wrong: for an
adapter, the training texts it held out for validation. It is stored next to the adapter
(``matextract-calibration.json``), or for a base model and schema in the package's
``data/calibration`` folder. Without one, a value's confidence is the uncalibrated
``raw_confidence`` and the output says so.

Pure numpy; the measures (expected calibration error, reliability bins, risk-coverage)
live here too so that fitting and reporting agree on them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from extraction.confidence.signals import FEATURES

CALIBRATION_FILE = "matextract-calibration.json"
RAW = "uncalibrated"
BINS = 10


# Token log-probabilities of right values sit near 0 (-0.001) and of wrong ones a little
# lower (-0.2): the regression sees their surprise on a log scale, where they differ.
LOG_SCALED = ("mean", "low", "first")
SURPRISE_FLOOR = 1e-4


def inputs(features: Mapping[str, float]) -> list[float]:
    """The regression's inputs, in ``FEATURES`` order."""
    return [math.log10(SURPRISE_FLOOR - features[name]) if name in LOG_SCALED
            else features[name] for name in FEATURES]


def raw_confidence(features: Mapping[str, float]) -> float:
    """The uncalibrated confidence: the geometric mean probability of the value's tokens,
    halved when the value is not in the document."""
    return math.exp(features["mean"]) * (1.0 if features["grounded"] else 0.5)


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic map from features to the probability that a value is right."""

    weights: dict[str, float]
    bias: float
    schema: str = ""  # the schema whose values it was fitted on
    fitted_on: str = ""  # what it was fitted on, for the output and the report
    values: int = 0  # how many labelled values
    measures: dict[str, float] = field(default_factory=dict)  # ECE before/after, in sample

    def confidence(self, features: Mapping[str, float]) -> float:
        z = self.bias + sum(self.weights.get(name, 0.0) * x
                            for name, x in zip(FEATURES, inputs(features)))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"format": "1", "method": "logistic", "features": list(self.weights),
                "weights": self.weights, "bias": self.bias, "schema": self.schema,
                "fitted_on": self.fitted_on,
                "values": self.values, "measures": self.measures}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        weights = {str(k): float(v) for k, v in data["weights"].items()}
        unknown = set(weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}")
        return cls(weights, float(data["bias"]), str(data.get("schema", "")),
                   str(data.get("fitted_on", "")),
                   int(data.get("values", 0)), dict(data.get("measures", {})))


# What ``fit_selected`` chooses among: every feature, or the value's own tokens only.
CANDIDATE_FEATURES = (FEATURES, ("low", "words"), ("low",))
CANDIDATE_L2 = (0.01, 0.05, 0.2)


def fit(rows: Sequence[tuple[Mapping[str, float], bool]], *, schema: str = "",
        fitted_on: str = "", l2: float = 0.01,
        use: Sequence[str] = FEATURES) -> Calibration:
    """Logistic regression by Newton's method over the features in ``use`` (L2-regularised,
    so a feature that never varies on the data, e.g. ``revised`` with one attempt, stays at
    weight 0)."""
    if len({label for _, label in rows}) < 2:
        raise ValueError("calibration needs both right and wrong values "
                         f"({len(rows)} values, all {'right' if rows and rows[0][1] else 'wrong'})")
    chosen = [FEATURES.index(name) for name in use]
    x = np.array([[inputs(f)[i] for i in chosen] + [1.0] for f, _ in rows])
    y = np.array([float(label) for _, label in rows])
    weights = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2 * len(rows))
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights, -40, 40)))
        gradient = x.T @ (p - y) + penalty * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    fitted = Calibration({name: float(w) for name, w in zip(use, weights[:-1])},
                         float(weights[-1]))
    before = expected_calibration_error([(raw_confidence(f), label) for f, label in rows])
    after = expected_calibration_error([(fitted.confidence(f), label) for f, label in rows])
    return Calibration(fitted.weights, fitted.bias, schema, fitted_on, len(rows),
                       {"ece_uncalibrated": round(before, 4), "ece_fitted": round(after, 4)})


def fit_selected(rows: Sequence[tuple[Mapping[str, float], bool]], groups: Sequence[str], *,
                 schema: str = "", fitted_on: str = "") -> Calibration:
    """The candidate (features, L2) with the lowest cross-validated log-loss, leaving out one
    group (a text: its values are not independent) at a time, refitted on all rows. Held-out
    sets are small (an adapter keeps back a few dozen texts), where fewer inputs can
    generalise better; the data decide."""
    folds = sorted(set(groups))
    best: tuple[float, Sequence[str], float] | None = None
    for use in CANDIDATE_FEATURES:
        for l2 in CANDIDATE_L2:
            loss = 0.0
            for left_out in folds:
                train = [row for row, g in zip(rows, groups) if g != left_out]
                if len({label for _, label in train}) < 2:
                    continue
                model = fit(train, l2=l2, use=use)
                for (f, label), g in zip(rows, groups):
                    if g == left_out:
                        p = min(max(model.confidence(f), 1e-6), 1 - 1e-6)
                        loss -= math.log(p if label else 1 - p)
            if best is None or loss < best[0]:
                best = (loss, use, l2)
    assert best is not None
    chosen = fit(rows, schema=schema, fitted_on=fitted_on, l2=best[2], use=best[1])
    return Calibration(chosen.weights, chosen.bias, schema, fitted_on, len(rows),
                       {**chosen.measures, "cv_log_loss": round(best[0] / len(rows), 4),
                        "l2": best[2]})


def read_calibration(path: Path) -> Calibration:
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a matextract calibration ({exc})") from exc


# --- measures ---------------------------------------------------------------------------------

def reliability_bins(pairs: Sequence[tuple[float, bool]], bins: int = BINS
                     ) -> list[dict[str, float]]:
    """Equal-width confidence bins: each bin's count, mean confidence and share right."""
    out = []
    for number in range(bins):
        low, high = number / bins, (number + 1) / bins
        inside = [(c, r) for c, r in pairs
                  if low <= c < high or (number == bins - 1 and c == 1.0)]
        if inside:
            out.append({"low": low, "high": high, "count": len(inside),
                        "confidence": sum(c for c, _ in inside) / len(inside),
                        "accuracy": sum(r for _, r in inside) / len(inside)})
    return out


def expected_calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = BINS) -> float:
    """Sum over bins of |share right - mean confidence|, weighted by the bin's share."""
    if not pairs:
        return math.nan
    return sum(b["count"] * abs(b["accuracy"] - b["confidence"])
               for b in reliability_bins(pairs, bins)) / len(pairs)


def risk_coverage(values: Sequence[tuple[float, bool, str]], gold_total: int
                  ) -> list[dict[str, float]]:
    """Keeping only values at or above each threshold (every distinct confidence, highest
    first): the share kept, their precision, recall and F1.

    ``values``: (confidence, right, key); precision counts values, recall counts distinct
    right keys (a value written twice, as a host and in a link, finds one gold value) out of
    ``gold_total``."""
    ordered = sorted(values, key=lambda v: -v[0])
    out, right, found = [], 0, set()
    for position, (confidence, correct, key) in enumerate(ordered, start=1):
        right += correct
        if correct:
            found.add(key)
        if position < len(ordered) and ordered[position][0] == confidence:
            continue  # ties are kept or dropped together
        precision = right / position
        recall = len(found) / gold_total if gold_total else math.nan
        f1 = (2 * precision * recall / (precision + recall)
              if precision + recall > 0 else 0.0) if gold_total else math.nan
        out.append({"threshold": confidence, "coverage": position / len(ordered),
                    "precision": precision, "recall": recall, "f1": f1})
    return out
