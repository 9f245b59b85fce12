"""Few-shot examples from a user's annotated file (``--examples``).

Such a file may hold hundreds of texts; the prompt has room for two or three. Small base
models copy the shape of what they are shown, so the chosen examples must show filled
records (else the shortest valid answer, an empty one, wins) and stay short.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extraction.datasets.annotated import read_annotated_jsonl
from extraction.errors import ConfigError
from extraction.schemas.base import Example, scalar_leaves

DEFAULT_COUNT = 2  # examples shown when neither --few-shot nor the adapter's card says
MAX_CHARS = 1200  # longer texts are chosen only when no shorter one is left


def filled_paths(record: Any) -> set[str]:
    """Field paths (list positions dropped: ``links[].host``) holding a string or a number.

    Booleans do not count: a default ``false`` says nothing was found."""
    return {re.sub(r"\[\d+\]", "[]", path) for path, value in scalar_leaves(record)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)}


def choose_examples(candidates: Sequence[Example], *, count: int,
                    max_chars: int = MAX_CHARS) -> tuple[Example, ...]:
    """``count`` examples, picked one at a time by, in order: a non-empty record, a text of
    at most ``max_chars``, the most fields not yet shown, the shorter text, the earlier line.

    Deterministic, and the first n of a larger choice are the choice of n (so a grid over
    ``few_shot`` shows nested sets)."""
    fields = [filled_paths(example.output) for example in candidates]
    remaining = list(range(len(candidates)))
    shown: set[str] = set()
    texts: set[str] = set()
    chosen: list[Example] = []
    while remaining and len(chosen) < count:
        def rank(index: int) -> tuple[bool, bool, int, int, int]:
            text = candidates[index].text
            return (bool(fields[index]), len(text) <= max_chars, len(fields[index] - shown),
                    -len(text), -index)

        best = max(remaining, key=rank)
        remaining.remove(best)
        if candidates[best].text in texts:
            continue  # the same text twice teaches nothing new
        texts.add(candidates[best].text)
        shown |= fields[best]
        chosen.append(candidates[best])
    return tuple(chosen)


def read_examples_file(path: Path, *, schema: str) -> tuple[Example, ...]:
    """Every text of an annotated JSONL file as a candidate example; its schema must be the
    run's (``schema``: ExtractorConfig.schema_name)."""
    loaded = read_annotated_jsonl(path)
    if not same_schema(loaded.schema, schema):
        raise ConfigError(f"--examples {path}: its texts are annotated for schema "
                          f"{loaded.schema!r}, but this run extracts {schema!r}",
                          hint="give an examples file whose lines name the run's schema, or "
                               f"run with --schema {loaded.schema}")
    return tuple(Example(item.text, item.gold, origin=f"{path}:{item.id}")
                 for item in loaded.examples)


def same_schema(first: str, second: str) -> bool:
    """Equal names, or two JSON Schema files that are one file or hold the same JSON (a task
    file names its schema relative to itself, a run relative to the working folder)."""
    if first == second:
        return True
    paths = Path(first), Path(second)
    if not all(p.is_file() for p in paths):
        return False
    if paths[0].resolve() == paths[1].resolve():
        return True
    try:
        return json.loads(paths[0].read_bytes()) == json.loads(paths[1].read_bytes())
    except (OSError, ValueError):
        return False
