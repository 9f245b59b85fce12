"""Summaries, the markdown table and plots of a results folder written by eval.runner.

Pure summarising first (``summarise``, ``markdown_table``); file reading, the published rows
and matplotlib at the edges. Strict = the NERRE paper's word-level scorer; normalised = ours
(eval/normalised.py). Every number carries one of the two labels.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from extraction.datasets import nerre as nerre_data
from extraction.storage.fileio import write_atomic
from extraction.storage.jsonl import read_jsonl
from eval.calibration import KEEP_SHARE, summary as value_calibration
from eval.nerre_scoring import Score, nanmean
from eval.normalised import ENTRY_LAYOUT, score_example
from eval.runner import META_SUFFIX, RESULT_KEYS, RESULTS_SUFFIX, empty_answer
from eval.tasks import doping_to_ours, entries_to_ours, strict_counts
from eval.tradeoffs import plot_tradeoffs, tradeoff_table

PUBLISHED = {  # model label, parameters, file key in data/nerre
    "gpt3": ("GPT-3 davinci, fine-tuned", 175e9),
    "llama2": ("Llama-2-70B, LoRA", 70e9),
}
PUBLISHED_NOTE = "published (Dagdelen et al. 2024), scored here from data/nerre"


# --- pure summaries ---------------------------------------------------------------------------

def _score(counts: Sequence[int]) -> dict[str, Any]:
    """P/R as the paper (nan when nothing was predicted / expected); F1 = 2tp/(2tp+fp+fn)
    whenever anything was: a model that finds nothing scores 0, not "undefined". (The paper's
    nan F1 only matters for its fold means; pooled values are the same either way.)"""
    s = Score.from_counts(*counts)
    f1 = 2 * s.tp / (2 * s.tp + s.fp + s.fn) if s.tp + s.fp + s.fn else math.nan
    return {"precision": s.precision, "recall": s.recall, "f1": f1,
            "tp": s.tp, "fp": s.fp, "fn": s.fn}


def _pool(per_example: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summed counts -> P/R/F1 per field and link type, both pooled, and exact match."""
    fields: dict[str, list[int]] = {}
    links: dict[str, list[int]] = {}
    for scores in per_example:
        for target, group in ((fields, scores["fields"]), (links, scores["links"])):
            for name, counts in group.items():
                target[name] = [a + b for a, b in zip(target.get(name, [0, 0, 0]), counts)]

    def total(group: Mapping[str, list[int]]) -> list[int]:
        return [sum(c[i] for c in group.values()) for i in range(3)]

    return {"fields": {k: _score(c) for k, c in fields.items()},
            "links": {k: _score(c) for k, c in links.items()},
            "all_fields": _score(total(fields)), "all_links": _score(total(links)),
            "exact_match": sum(s["exact"] for s in per_example) / max(len(per_example), 1)}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def headline(scores: Mapping[str, Any] | None, task: str) -> float | None:
    """The one F1 a plot shows: triplet/link F1 for doping, mean field F1 otherwise."""
    if not scores:
        return None
    if task == "doping":
        return scores["links"]["host-dopant"]["f1"]
    value = nanmean(s["f1"] for s in scores["fields"].values())
    return None if math.isnan(value) else value


def scored_schema(meta: Mapping[str, Any]) -> str:
    """The schema a run was scored with: it picks the headline F1 and the table's columns
    (a task name such as ``heldout:ADAPTER`` or ``jsonl:PATH`` does not say it)."""
    return str(meta.get("schema") or str(meta.get("task", "")).split(":")[0])


def summarise(meta: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One configuration's row: quality (strict and normalised), validity and cost."""
    task = str(meta.get("task", ""))
    schema = scored_schema(meta)
    strict_lines = [line["strict"] for line in lines if line.get("strict") is not None]
    strict = _pool(strict_lines) if lines and len(strict_lines) == len(lines) else None
    normalised = _pool([line["normalised"] for line in lines]) if lines else None
    values = sum(line.get("grounded", 0) + line.get("ungrounded", 0) for line in lines)
    gen_s = sum(line.get("generation_s", 0.0) for line in lines)
    tokens = sum(line.get("new_tokens", 0) for line in lines)
    measured = [line for line in lines if "seconds" in line]
    model = meta.get("model", {})
    return {
        "id": meta.get("id"), "task": task, "published": bool(meta.get("published")),
        "model": model.get("name") or Path(str(meta.get("config", {}).get("model", "?"))).name,
        "adapter": meta.get("config", {}).get("adapter"),
        # --examples is not a --set option, but it changes the prompt: shown with them
        "options": {**meta.get("options", {}),
                    **({"examples": Path(str(meta["config"]["examples"])).name}
                       if meta.get("config", {}).get("examples") else {})},
        "parameters": model.get("parameters"),
        # what computed the answers: weights type and runtime (the tradeoff chart's points)
        "precision": model.get("precision"), "backend": model.get("backend"),
        "n": len(lines), "strict": strict, "normalised": normalised, "schema": schema,
        "headline_f1": {"strict": headline(strict, schema),
                        "normalised": headline(normalised, schema)},
        "parse_rate": _mean([float(line["parses"]) for line in lines if "parses" in line]),
        "validity_rate": _mean([float(line["valid"]) for line in lines if "valid" in line]),
        # of the texts whose gold is filled, the share answered with an empty record
        "empty_answer_rate": _mean([float(line["empty_answer"]) for line in lines
                                    if line.get("empty_answer") is not None]),
        "grounding_rate": sum(line.get("grounded", 0) for line in lines) / values
        if values else None,
        "exact_match": (strict or normalised or {}).get("exact_match"),
        "seconds_per_example": _mean([line["seconds"] for line in measured]),
        "generated_tokens": tokens if measured else None,
        "tokens_per_second": tokens / gen_s if gen_s else None,
        "attempts_per_example": _mean([line["attempts"] for line in measured]),
        "peak_rss_mb": max((line["rss_mb"] for line in lines if "rss_mb" in line), default=None),
        "peak_gpu_mb": max((line["gpu_peak_mb"] for line in lines if "gpu_peak_mb" in line),
                           default=None),
        "command": meta.get("command"),
        "calibration": value_calibration(lines),
        "calibration_source": next((line["calibration"] for line in lines
                                    if line.get("calibration")), None),
    }


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _options_text(row: Mapping[str, Any]) -> str:
    if row["published"]:
        return "published"
    return ", ".join(f"{k}={v}" for k, v in row["options"].items()) or "defaults"


def _quality_columns(task: str, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """(header, getter) of the F1 columns that fit the task's schema."""
    def pick(kind: str, group: str, name: str):
        return lambda row: ((row.get(kind) or {}).get(group, {}).get(name) or {}).get("f1")

    def pooled(group: str):
        return lambda row: ((row.get("normalised") or {}).get(group) or {}).get("f1")

    kinds = {row.get("schema") for row in rows if not row.get("published")}
    kind = kinds.pop() if len(kinds) == 1 else task.split(":")[0]
    if kind == "doping":
        return [("strict host F1", pick("strict", "fields", "hosts")),
                ("strict dopant F1", pick("strict", "fields", "dopants")),
                ("strict triplet F1", pick("strict", "links", "host-dopant")),
                ("norm. host F1", pick("normalised", "fields", "hosts")),
                ("norm. dopant F1", pick("normalised", "fields", "dopants")),
                ("norm. link F1", pick("normalised", "links", "host-dopant"))]
    columns = []
    if kind in ENTRY_LAYOUT:
        _, root, fields = ENTRY_LAYOUT[kind]
        columns += [(f"strict {f} F1", pick("strict", "fields", f)) for f in fields]
        columns += [(f"strict {root}-{f} F1", pick("strict", "links", f"{root}-{f}"))
                    for f in fields if f != root]
        return columns + [("norm. entity F1", pooled("all_fields")),
                          ("norm. link F1", pooled("all_links"))]
    names = sorted({f for r in rows for f in ((r.get("normalised") or {}).get("fields") or {})})
    return [(f"norm. {f} F1", pick("normalised", "fields", f)) for f in names]


def markdown_table(task: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """One row per configuration (published rows first), quality and cost side by side."""
    columns: list[tuple[str, Any]] = [
        ("model", lambda r: r["model"]), ("adapter", lambda r: r["adapter"] or "–"),
        ("options", _options_text), ("n", lambda r: r["n"])]
    columns += _quality_columns(task, rows)
    columns += [("exact", lambda r: r["exact_match"]), ("parse", lambda r: r["parse_rate"]),
                ("valid", lambda r: r["validity_rate"]),
                ("empty", lambda r: r.get("empty_answer_rate")),
                ("grounded", lambda r: r["grounding_rate"]),
                ("s/example", lambda r: _f(r["seconds_per_example"], 2)),
                ("tok/s", lambda r: _f(r["tokens_per_second"], 1)),
                ("peak MB", lambda r: _f(r["peak_rss_mb"], 0))]
    ordered = sorted(rows, key=lambda r: not r["published"])
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_f(get(r)) for _, get in columns) + " |" for r in ordered]
    return "\n".join(lines)


# --- published rows (read the bundled predictions) ------------------------------------------

def calibration_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per run: how well its confidences are calibrated and what a threshold buys."""
    lines = ["| model | options | calibration | values | ECE | ECE uncalibrated | "
             "precision (all) | threshold | kept | precision (kept) | F1 all / kept |",
             "|" + "---|" * 11]
    for row in rows:
        c = row["calibration"]
        if not c:
            continue
        lines.append(f"| {row['model']} | {_options_text(row)} | "
                     f"{row.get('calibration_source') or '–'} | {c['values']} | "
                     f"{_f(c['ece'])} | {_f(c.get('ece_uncalibrated'))} | "
                     f"{_f(c['precision_all'])} | {_f(c['kept_threshold'])} | "
                     f"{_f(c['kept_coverage'], 2)} | {_f(c['kept_precision'])} | "
                     f"{_f(c['f1_all'])} / {_f(c['kept_f1'])} |")
    return "\n".join(lines)


@cache
def _published_cached(task: str) -> tuple[dict[str, Any], ...]:
    kind, _, fold = task.partition(":")
    rows = []
    for key, (label, parameters) in PUBLISHED.items():
        lines = []
        if kind == "doping" and not fold:
            for p in nerre_data.load_doping_predictions(key):
                ours = doping_to_ours(p.record) if p.record else None
                gold = doping_to_ours(p.sentence.gold)
                lines.append({"strict": strict_counts("doping", p.sentence.gold, p.record),
                              "normalised": score_example(gold, ours, "doping"),
                              "parses": p.record is not None,
                              "empty_answer": empty_answer(gold, ours)})
        elif kind in ENTRY_LAYOUT and fold.isdigit() and int(fold) < nerre_data.N_FOLDS:
            for e in nerre_data.load_entry_predictions(kind, key, int(fold)):
                ours = entries_to_ours(e.entries, kind) if e.entries is not None else None
                gold = entries_to_ours(e.gold, kind)
                lines.append({"strict": strict_counts(kind, e.gold, e.entries),
                              "normalised": score_example(gold, ours, kind),
                              "parses": e.entries is not None,
                              "empty_answer": empty_answer(gold, ours)})
        else:
            return ()
        meta = {"id": f"published-{key}", "task": task, "published": True,
                "model": {"name": label, "parameters": parameters}, "config": {}}
        rows.append(summarise(meta, lines))
    return tuple(rows)


def published_rows(task: str) -> list[dict[str, Any]]:
    """GPT-3 and Llama-2-70B on the task, from the paper's own outputs (strict values match
    SCORING.md); none for tasks outside NERRE."""
    return [dict(row) for row in _published_cached(task)]


# --- the folder -------------------------------------------------------------------------------

def load_runs(folder: Path) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(meta, result lines) of every configuration in a results folder."""
    runs = []
    for meta_path in sorted(folder.glob(f"*{META_SUFFIX}")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        results = meta_path.with_name(meta_path.name.removesuffix(META_SUFFIX) + RESULTS_SUFFIX)
        runs.append((meta, read_jsonl(results, required=RESULT_KEYS).rows))
    return runs


def _clean(value: Any) -> Any:
    """nan -> None, so results.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_report(folder: Path, *, plots: bool = True) -> str:
    """results.json, report.md and PNG plots in ``folder``; returns the markdown."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    commands: list[str] = []
    for meta, lines in load_runs(folder):
        by_task.setdefault(meta["task"], []).append(summarise(meta, lines))
        if meta.get("command") and meta["command"] not in commands:
            commands.append(meta["command"])
    parts = [f"# Evaluation results ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "Strict = the NERRE paper's word-level scorer; norm. = our normalised entity-level "
             f"scorer (eval/normalised.py). Published rows: {PUBLISHED_NOTE}, on the full split.",
             "", "Command(s):", "", *[f"    {c}" for c in commands], ""]
    results: dict[str, Any] = {"tasks": {}}
    for task, rows in by_task.items():
        published = published_rows(task)
        results["tasks"][task] = {"runs": rows, "published": published}
        parts += [f"## {task}", "", markdown_table(task, published + rows), ""]
        timed = [row for row in rows if row["seconds_per_example"]]
        if len(timed) > 1:
            parts += ["Accuracy against size, speed and memory (eval/tradeoffs.py): "
                      "records/min = 60 / seconds per example, peak MB = the largest resident "
                      "size measured after a batch of the run.", "",
                      tradeoff_table(published + timed), ""]
            if plots:
                path = plot_tradeoffs(published + timed,
                                      folder / f"{_file_prefix(task)}-tradeoffs.png", task)
                parts += [f"![{path.stem}]({path.name})", ""]
        if any(row["calibration"] for row in rows):
            parts += ["Confidence per value (eval/calibration.py): ECE = expected "
                      "calibration error (10 bins); kept = the most confident values, "
                      f"at least {KEEP_SHARE:.0%} of them.", "",
                      calibration_table(rows), ""]
        if plots:
            for path in write_plots(folder, task, rows, published):
                parts.append(f"![{path.stem}]({path.name})")
            parts.append("")
    markdown = "\n".join(parts)
    write_atomic(folder / "results.json", json.dumps(_clean(results), indent=1, default=str))
    write_atomic(folder / "report.md", markdown)
    return markdown


# --- plots (matplotlib, Agg) ------------------------------------------------------------------

def _file_prefix(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", task).strip("-")


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['model']} ({_options_text(row)})"


def write_plots(folder: Path, task: str, rows: Sequence[Mapping[str, Any]],
                published: Sequence[Mapping[str, Any]]) -> list[Path]:
    """F1 vs model size, F1 vs seconds per example, and the effect of each varied option."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    prefix = _file_prefix(task)
    what = "triplet F1" if any(r.get("schema") == "doping" for r in rows) \
        else "mean field F1"
    written = []

    def save(fig: Any, name: str) -> None:
        path = folder / f"{prefix}-{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    for name, x_key, x_label, source in (
            ("f1_vs_size", "parameters", "parameters", [*rows, *published]),
            ("f1_vs_latency", "seconds_per_example", "seconds per example", rows)):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for row in source:
            x = row[x_key]
            if x is None:
                continue
            for kind, marker in (("strict", "o"), ("normalised", "^")):
                y = row["headline_f1"][kind]
                if y is not None:
                    ax.scatter([x], [y], marker=marker, color="tab:red" if row["published"]
                               else "tab:blue", alpha=0.8)
            ax.annotate(_label(row), (x, row["headline_f1"]["strict"] or 0), fontsize=7)
        if x_key == "parameters":
            ax.set_xscale("log")
        ax.set(xlabel=x_label, ylabel=what, title=task, ylim=(0, 1.05))
        ax.legend(handles=[
            Line2D([], [], marker="o", ls="", color="gray", label="strict"),
            Line2D([], [], marker="^", ls="", color="gray", label="normalised"),
            Line2D([], [], marker="s", ls="", color="tab:blue", label="this run"),
            Line2D([], [], marker="s", ls="", color="tab:red", label="published")],
            fontsize=7, loc="best")
        save(fig, name)

    varied = {k for row in rows for k in row["options"]
              if len({json.dumps(r["options"].get(k)) for r in rows}) > 1}
    if varied:
        fig, axes = plt.subplots(1, len(varied), figsize=(4 * len(varied), 4), squeeze=False)
        for ax, key in zip(axes[0], sorted(varied)):
            values = sorted({json.dumps(r["options"].get(k)) for r in rows for k in [key]})
            for offset, kind in ((-0.2, "strict"), (0.2, "normalised")):
                means = [nanmean(r["headline_f1"][kind] for r in rows
                                 if json.dumps(r["options"].get(key)) == v
                                 and r["headline_f1"][kind] is not None) for v in values]
                ax.bar([i + offset for i in range(len(values))],
                       [0 if math.isnan(m) else m for m in means], width=0.4, label=kind)
            ax.set_xticks(range(len(values)), values)
            ax.set(xlabel=key, ylabel=f"{what} (mean over other options)", ylim=(0, 1.05))
            ax.legend(fontsize=7)
        save(fig, "option_effects")

    calibrated = [row for row in rows if row.get("calibration")]
    if calibrated:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        left.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
        for row in calibrated:
            c = row["calibration"]
            bins = c["bins"]
            left.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins],
                      marker="o", label=f"{_label(row)}, ECE {c['ece']:.3f}")
            curve = c["curve"]
            right.plot([p["coverage"] for p in curve], [p["precision"] for p in curve],
                       label=f"{_label(row)} precision")
            right.plot([p["coverage"] for p in curve], [p["f1"] for p in curve], ls=":",
                       label=f"{_label(row)} F1")
        left.set(xlabel="confidence (bin mean)", ylabel="share of values right",
                 title="reliability", xlim=(0, 1), ylim=(0, 1.05))
        right.axvline(KEEP_SHARE, color="gray", lw=1, ls="--")
        right.set(xlabel="share of values kept (most confident first)",
                  ylabel="precision / F1 of kept values", title="risk-coverage",
                  xlim=(0, 1.02), ylim=(0, 1.05))
        left.legend(fontsize=7)
        right.legend(fontsize=7)
        save(fig, "calibration")
    return written
