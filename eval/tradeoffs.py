"""Accuracy against size, speed and memory: the research question's one table and one chart.

Every configuration of a results folder is a point (strict headline F1, parameters,
records per minute, peak memory); the published GPT-3 and Llama-2-70B rows have F1 and
parameters only. The Pareto front is the set of our configurations no other one beats on
every axis at once (F1 up, parameters down, records/min up, peak memory down): each of them
is the best choice for some weighing of accuracy against cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Point:
    """One configuration on the chart."""

    label: str
    weights: str  # what the weights are stored as: float32, q8_0, int8 (torch dynamic), ...
    published: bool
    f1: float | None
    parameters: float | None
    records_per_minute: float | None
    peak_mb: float | None

    def beats(self, other: "Point") -> bool:
        """At least as good on every axis, better on one."""
        mine = (self.f1, -self.parameters, self.records_per_minute, -self.peak_mb)
        theirs = (other.f1, -other.parameters, other.records_per_minute, -other.peak_mb)
        return all(a >= b for a, b in zip(mine, theirs)) and mine != theirs

    @property
    def complete(self) -> bool:
        return None not in (self.f1, self.parameters, self.records_per_minute, self.peak_mb)


def weights_type(row: Mapping[str, Any]) -> str:
    """float32 / bfloat16 (transformers), Q8_0 / Q4_K_M / f32 GGUF (llama.cpp)."""
    if row.get("published"):
        return "published"
    precision = row.get("precision") or row["options"].get("precision") or "?"
    backend = row.get("backend")
    if precision == "int8" and backend == "transformers":
        return "int8 (torch dynamic)"
    return f"{precision} ({backend})" if backend else str(precision)


def points(rows: Sequence[Mapping[str, Any]]) -> list[Point]:
    """Report rows (``eval.report.summarise``) as chart points."""
    out = []
    for row in rows:
        seconds = row.get("seconds_per_example")
        options = ", ".join(f"{key}={value}" for key, value in row.get("options", {}).items()
                            if key not in ("precision", "backend"))
        out.append(Point(
            label=f"{row['model']}" + (f" + {Path(str(row['adapter'])).name}"
                                       if row.get("adapter") else "")
            + (f" ({options})" if options else ""),
            weights=weights_type(row),
            published=bool(row.get("published")), f1=row["headline_f1"]["strict"],
            parameters=row.get("parameters"),
            records_per_minute=60.0 / seconds if seconds else None,
            peak_mb=row.get("peak_rss_mb")))
    return out


def ranked(chart: Sequence[Point]) -> list[Point]:
    """Most accurate first: the order of the table, whose row numbers label the chart."""
    return sorted(chart, key=lambda p: -(p.f1 or 0.0))


def pareto_front(candidates: Sequence[Point]) -> list[Point]:
    """Our complete points that no other complete point beats."""
    ours = [p for p in candidates if p.complete and not p.published]
    return [p for p in ours if not any(q.beats(p) for q in ours)]


def _f(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _parameters_text(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e9:g}B" if value >= 1e9 else f"{value / 1e6:.0f}M"


def tradeoff_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: every configuration by F1, with size, speed, memory and the front."""
    chart = ranked(points(rows))
    front = set(pareto_front(chart))
    lines = ["| # | model | weights | parameters | strict F1 | records/min | peak MB | "
             "Pareto front |", "|---|---|---|---|---|---|---|---|"]
    for number, point in enumerate(chart, 1):
        lines.append(f"| {number} | {point.label} | {point.weights} | "
                     f"{_parameters_text(point.parameters)} | {_f(point.f1, 3)} | "
                     f"{_f(point.records_per_minute, 1)} | {_f(point.peak_mb, 0)} | "
                     f"{'**yes**' if point in front else ''} |")
    return "\n".join(lines)


AXES = (("parameters", "parameters", True), ("records_per_minute", "records per minute", False),
        ("peak_mb", "peak memory (MB, resident)", False))


def plot_tradeoffs(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """Strict F1 against parameters, records/min and peak memory; points numbered as the
    table's rows, the front's ringed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chart = ranked(points(rows))
    front = set(pareto_front(chart))
    fig, axes = plt.subplots(1, len(AXES), figsize=(6 * len(AXES), 5.2), sharey=True)
    for ax, (key, label, log) in zip(axes, AXES):
        for number, point in enumerate(chart, 1):
            x = getattr(point, key)
            if x is None or point.f1 is None:
                continue
            color = "tab:red" if point.published else "tab:blue"
            ax.scatter([x], [point.f1], color=color, s=70 if point in front else 25,
                       edgecolors="black" if point in front else "none", linewidths=1.5,
                       zorder=3)
            ax.annotate(str(number), (x, point.f1), fontsize=8, xytext=(4, 3),
                        textcoords="offset points")
        if log:
            ax.set_xscale("log")
        ax.set(xlabel=label, ylim=(0, 1.0))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("strict F1 (headline)")
    axes[0].scatter([], [], color="tab:red", label="published (Dagdelen et al. 2024)")
    axes[0].scatter([], [], color="tab:blue", label="this folder's runs")
    axes[0].scatter([], [], color="tab:blue", edgecolors="black", linewidths=1.5, s=70,
                    label="Pareto front (all four axes)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title}: accuracy against size, speed and memory (numbers: rows of the "
                 "table in report.md)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
