"""Find and read evaluation results folders (written by ``matextract eval``). Pure, read-only:
the app never writes into a folder that an evaluation may still be appending to."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.runner import META_SUFFIX, RESULTS_SUFFIX

MAX_DEPTH = 2


@dataclass
class ResultsView:
    """What the evaluation page shows for one folder."""

    folder: Path
    tables: dict[str, str] = field(default_factory=dict)  # task -> markdown table
    images: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    report: str | None = None  # report.md without its image lines
    live: bool = False  # tables computed from the result lines (no report, or an old one)
    examples: int = 0


def is_results_folder(folder: Path) -> bool:
    return folder.is_dir() and (any(folder.glob(f"*{META_SUFFIX}"))
                                or (folder / "report.md").exists())


def result_folders(root: Path) -> list[Path]:
    """``root`` and its sub-folders (two levels) that hold evaluation results."""
    if not root.is_dir():
        return []
    found = [root] if is_results_folder(root) else []
    level = [root]
    for _ in range(MAX_DEPTH):
        level = sorted(p for folder in level for p in folder.iterdir()
                       if p.is_dir() and not p.name.startswith("."))
        found += [p for p in level if is_results_folder(p)]
    return found


def load(folder: Path) -> ResultsView:
    """The folder's tables (from results.json when current, else computed live), plots and
    commands."""
    from eval.report import load_runs, markdown_table, published_rows, summarise

    view = ResultsView(folder)
    report = folder / "report.md"
    results = folder / "results.json"
    newest = max((p.stat().st_mtime for p in folder.glob(f"*{RESULTS_SUFFIX}")), default=0.0)
    current = report.exists() and results.exists() and results.stat().st_mtime >= newest
    runs = load_runs(folder)
    view.examples = sum(len(lines) for _, lines in runs)
    view.commands = list(dict.fromkeys(m["command"] for m, _ in runs if m.get("command")))
    if current:
        data = json.loads(results.read_text(encoding="utf-8"))
        for task, parts in data.get("tasks", {}).items():
            view.tables[task] = markdown_table(task, [*parts.get("published", []),
                                                      *parts.get("runs", [])])
    else:
        view.live = True
        by_task: dict[str, list[dict[str, Any]]] = {}
        for meta, lines in runs:
            by_task.setdefault(meta.get("task", "?"), []).append(summarise(meta, lines))
        for task, rows in by_task.items():
            view.tables[task] = markdown_table(task, [*published_rows(task), *rows])
    if report.exists():
        text = report.read_text(encoding="utf-8")
        view.report = re.sub(r"^!\[[^\]]*\]\([^)]*\)\s*$", "", text, flags=re.M).strip()
    view.images = sorted(folder.glob("*.png"))
    return view
