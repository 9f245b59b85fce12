"""The confidence bands every face shows (web UI, HTML report, CLI summary): one place, so a
value is 'low' in the same way everywhere."""

from __future__ import annotations

from typing import Literal

Level = Literal["high", "medium", "low", "unknown"]

HIGH = 0.8  # at or above: high
LOW = 0.5  # below: low; between: medium

# Colours of the bands (background of a highlighted value), shared by the faces.
COLOURS: dict[Level, str] = {"high": "#b7e4c7", "medium": "#ffe08a", "low": "#f4a6a6",
                             "unknown": "#d9d9d9"}


def level(confidence: float | None) -> Level:
    """The band of a confidence (None: the output recorded none)."""
    if confidence is None:
        return "unknown"
    return "high" if confidence >= HIGH else "low" if confidence < LOW else "medium"
