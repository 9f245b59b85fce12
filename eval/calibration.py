"""Is a value's confidence right? Per-value truth, calibration measures, fitting.

A predicted value is *right* when its normalised form is among the gold values of its field
(eval/normalised.py: a doping link's host counts among the hosts, a material entry's formula
among the formulas). That is a value-level precision: it asks whether each value the model
wrote is one the annotators wrote, not whether every gold value was found (recall is the
other scorers' job, and the risk-coverage curve below uses the gold count for it).

Pure functions over result lines; the CLI (``matextract eval --fit-calibration``) stores a
fitted calibration with ``extraction.confidence.store``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from extraction.confidence.calibration import (Calibration, expected_calibration_error,
                                               fit_selected, raw_confidence, reliability_bins,
                                               risk_coverage)
from extraction.datasets.conversion import ENTRY_LAYOUT
from extraction.schemas.base import without_positions
from extraction.types import Extraction
from eval.normalised import normalise, view

KEEP_SHARE = 0.7  # the acceptance point: precision of the 70% most confident values


def value_field(schema: str, path: str) -> str:
    """The gold field a value at ``path`` is checked against (``view``'s field names)."""
    bare = without_positions(path)
    if schema == "doping":
        return {"links.host": "hosts", "links.dopant": "dopants"}.get(bare, bare)
    if schema in ENTRY_LAYOUT:
        return bare.rsplit(".", 1)[-1]
    return bare


def value_rows(schema: str, gold: Any, extraction: Extraction | None) -> list[dict[str, Any]]:
    """One row per string value of a prediction: where, what, its confidence and features,
    and whether it is right."""
    if extraction is None:
        return []
    truth = view(gold, schema).fields
    rows = []
    for item in extraction.evidence:
        key = (value_field(schema, item.where.path), normalise(item.value))
        rows.append({"path": str(item.where), "value": item.value,
                     "confidence": item.confidence,
                     "features": dict(item.features) if item.features else None,
                     "key": "|".join(key), "right": key[1] in truth.get(key[0], frozenset())})
    return rows


def gold_count(schema: str, gold: Any) -> int:
    """How many gold values a prediction could match (recall's denominator)."""
    return sum(len(values) for values in view(gold, schema).fields.values())


def _scored(lines: Sequence[Mapping[str, Any]]) -> list[tuple[float, bool, str]]:
    """(confidence, right, key within the run) of every value that has a confidence."""
    return [(row["confidence"], bool(row["right"]), f"{line['id']}|{row.get('key')}")
            for line in lines for row in line.get("values") or []
            if row.get("confidence") is not None]


def summary(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Calibration of one run: ECE, reliability bins, the risk-coverage curve and the
    precision of the most confident 70% against all values. None without confidences."""
    scored = _scored(lines)
    if not scored:
        return None
    pairs = [(confidence, right) for confidence, right, _ in scored]
    gold = sum(line.get("gold_values", 0) for line in lines)
    curve = risk_coverage(scored, gold)
    kept = next((point for point in curve if point["coverage"] >= KEEP_SHARE), curve[-1])
    raw = [(raw_confidence(row["features"]), bool(row["right"])) for line in lines
           for row in line.get("values") or [] if row.get("features")]
    return {"values": len(pairs), "ece": expected_calibration_error(pairs),
            "ece_uncalibrated": expected_calibration_error(raw),
            "precision_all": curve[-1]["precision"], "f1_all": curve[-1]["f1"],
            "keep_share": KEEP_SHARE, "kept_coverage": kept["coverage"],
            "kept_threshold": kept["threshold"], "kept_precision": kept["precision"],
            "kept_f1": kept["f1"], "bins": reliability_bins(pairs), "curve": curve}


def fit_lines(lines: Sequence[Mapping[str, Any]], *, schema: str,
              fitted_on: str) -> Calibration:
    """A calibration fitted on one run's values (their features and truth)."""
    picked = [(row, str(line["id"])) for line in lines
              for row in line.get("values") or [] if row.get("features")]
    return fit_selected([(row["features"], bool(row["right"])) for row, _ in picked],
                        [group for _, group in picked], schema=schema, fitted_on=fitted_on)


# Test splits: confidences are measured there, never fitted.
TEST_TASKS = ("doping", "doping-abstracts")


def fit_runs(runs: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]
             ) -> list[tuple[Mapping[str, Any], Calibration]]:
    """A calibration per run of a results folder, with the run's config (where to store it:
    its adapter, or its base model and schema). Refuses test splits."""
    fitted = []
    for meta, lines in runs:
        task = str(meta.get("task", ""))
        if task in TEST_TASKS:
            raise ValueError(f"task {task!r} is a test split: calibrations are fitted on "
                             "held-out training data (heldout:ADAPTER, or another fold)")
        config = meta.get("config", {})
        schema = str(config.get("schema_name") or meta.get("schema") or "")
        fitted.append((config, fit_lines(lines, schema=schema,
                                         fitted_on=f"{task} ({len(lines)} texts)")))
    return fitted
