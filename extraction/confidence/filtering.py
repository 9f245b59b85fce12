"""Keep the values a threshold trusts, send the rest to review: nothing is dropped.

Works on output lines (``Extraction.to_dict``). A string in a list goes alone; an entry of a
list (a doping link, a material, a MOF) goes whole when one of its own text fields is below
the threshold, because half a link means nothing; a lone text field is blanked. Each value
that leaves becomes one review item holding where it was, its confidence and evidence (and
the entry it left with). Values without a confidence are kept: nothing says they are low.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from extraction.errors import ConfigError
from extraction.schemas.base import string_leaves


def split_line(line: Mapping[str, Any], threshold: float
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the line with only the values at or above ``threshold``, review items of the rest)."""
    confidence: Mapping[str, float] = line.get("confidence") or {}
    evidence: Mapping[str, list] = line.get("evidence") or {}
    moved: dict[str, str] = {}  # old key -> new key of every kept value
    review: list[dict[str, Any]] = []

    def low(key: str) -> bool:
        value = confidence.get(key)
        return value is not None and value < threshold

    def leave(key: str, value: str, entry: Any = None) -> None:
        review.append({"source": line.get("source"), "sha256": line.get("sha256"),
                       "path": key, "value": value, "confidence": confidence.get(key),
                       "threshold": threshold, "evidence": evidence.get(key, []),
                       **({"entry": entry} if entry is not None else {})})

    def keep(value: Any, old: str, new: str) -> Any:
        if isinstance(value, dict):
            return {name: keep_field(item, f"{old}.{name}", f"{new}.{name}")
                    for name, item in value.items()}
        if isinstance(value, list):
            kept: list[Any] = []
            for position, item in enumerate(value):
                key = f"{old}[{position}]"
                if isinstance(item, str) and low(key):
                    leave(key, item)
                elif isinstance(item, dict) and any(
                        isinstance(v, str) and low(f"{key}.{k}") for k, v in item.items()):
                    for path, text in string_leaves(item, key):
                        leave(path, text, entry=item)
                else:
                    kept.append(keep(item, key, f"{new}[{len(kept)}]"))
            return kept
        if isinstance(value, str) and value.strip():
            moved[old] = new
        return value

    def keep_field(value: Any, old: str, new: str) -> Any:
        if isinstance(value, str) and low(old):
            leave(old, value)
            return ""
        return keep(value, old, new)

    records = [keep(record, f"records[{r}]", f"records[{r}]")
               for r, record in enumerate(line.get("records") or [])]
    kept_line = copy.deepcopy(dict(line))
    kept_line["records"] = records
    kept_line["evidence"] = {moved[k]: v for k, v in evidence.items() if k in moved}
    kept_line["confidence"] = {moved[k]: v for k, v in confidence.items() if k in moved}
    kept_line["ungrounded"] = [moved[k] for k in line.get("ungrounded") or [] if k in moved]
    kept_line["reviewed"] = [moved[k] for k in line.get("reviewed") or [] if k in moved]
    kept_line["min_confidence"] = threshold
    return kept_line, review


def split_lines(lines: Iterable[Mapping[str, Any]], threshold: float | None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``split_line`` over many lines; no threshold keeps everything and reviews nothing."""
    kept: list[dict[str, Any]] = []
    review: list[dict[str, Any]] = []
    for line in lines:
        if threshold is None:
            kept.append(dict(line))
            continue
        shown, low = split_line(line, threshold)
        kept.append(shown)
        review += low
    return kept, review


def check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"min_confidence: {threshold} is not between 0 and 1",
                          hint="e.g. --min-confidence 0.5")
