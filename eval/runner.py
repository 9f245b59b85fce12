"""Run a grid of models x adapters x pipeline options on a task, resumably.

One results folder per grid; per configuration ``<slug>-<hash>.jsonl`` (one line per
example, appended and fsynced as each finishes) and ``<slug>-<hash>.config.json`` (the full
config, the few-shot origins, the command). Re-running skips examples already written; a line
torn by a kill is dropped and its example redone. Scores are computed here, per example, so a
report needs only the folder.
"""

from __future__ import annotations

import gc
import itertools
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eval.tasks import Task, TaskError, TaskExample, merge_records, score_prediction
from extraction import models
from extraction.errors import ConfigError, GenerationError, ModelNotFoundError
from extraction.datasets.annotated import MAX_EXCLUDED_SHARE
from extraction.config import DEFAULT_ATTEMPTS
from extraction.pipeline import Extraction, Extractor, ExtractorConfig, adapted_schema
from extraction.schemas.fewshot_choice import filled_paths
from extraction.storage.fileio import write_atomic
from extraction.storage.hashing import stable_hash
from extraction.storage.jsonl import Appender, read_jsonl, rewrite_jsonl
from eval.calibration import gold_count, value_rows
from extraction.types import Document

RESULTS_SUFFIX = ".jsonl"
RESULT_KEYS = ("id",)  # a results line without them is not one of ours: skipped, redone
META_SUFFIX = ".config.json"
# Set by --model, --adapter, --examples and the task, never by --set.
NOT_OPTIONS = ("model", "adapter", "schema_name", "examples")
_NONE = {"none", "null"}


# --- the grid -------------------------------------------------------------------------------

def parse_options(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["max_attempts=1,2", "constrained=true,false"]`` -> option -> typed values.

    Each value is checked by ExtractorConfig itself, so the error names the option and value.
    """
    valid = [f for f in ExtractorConfig.model_fields if f not in NOT_OPTIONS]
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--set {item!r} is not KEY=VALUE[,VALUE...]",
                              hint="e.g. --set max_attempts=1,2 --set constrained=true,false")
        if key not in valid:
            extra = (" (use --model / --adapter / --examples / the task for it)"
                     if key in NOT_OPTIONS else "")
            raise ConfigError(f"unknown option {key!r}{extra}",
                              hint=f"options: {', '.join(valid)}")
        values = []
        for text in (v.strip() for v in raw.split(",")):
            candidate: Any = None if text.lower() in _NONE else text
            try:
                values.append(getattr(ExtractorConfig(**{key: candidate}), key))
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise ConfigError(f"bad value {text!r} for option {key!r}: {reason}",
                                  hint=f"{key}: {ExtractorConfig.model_fields[key].description}"
                                  ) from None
        grid[key] = list(dict.fromkeys(values))
    return grid


def build_grid(task: Task, model_names: Sequence[str], adapters: Sequence[str | None],
               options: Mapping[str, Sequence[Any]]) -> list[tuple[ExtractorConfig, dict]]:
    """Every (config, the options set on it), models outermost so a model loads once."""
    keys = list(options)
    grid = []
    for model, adapter in itertools.product(model_names, adapters):
        for values in itertools.product(*(options[k] for k in keys)):
            chosen = dict(zip(keys, values))
            config = ExtractorConfig(model=model, adapter=adapter, schema_name=task.schema,
                                     examples=task.examples_file, **chosen)
            grid.append((config, chosen))
    return grid


def check_models(model_names: Sequence[str], adapters: Sequence[str | None]) -> None:
    """Fail before any work when a model or adapter cannot exist."""
    for name in model_names:
        if name not in models.MODELS and not Path(name).expanduser().is_dir():
            raise ModelNotFoundError(f"unknown model {name!r}",
                                     hint=f"known models: {', '.join(models.MODELS)}; "
                                          "or a local Hugging Face model folder")
    for adapter in adapters:
        if adapter not in (None, models.AUTO_ADAPTER):
            models.resolve_adapter(adapter)  # raises with the shipped names as a hint


def check_reachable(task: Task, grid: Sequence[tuple[ExtractorConfig, dict]], *,
                    accept: bool = False) -> list[str]:
    """For a user's JSONL task: which examples hold gold the run's schema (widened by the
    adapter's learnt bounds) cannot produce, e.g. values longer than a string bound.

    Returns summary lines; more than ``MAX_EXCLUDED_SHARE`` of the examples unreachable
    raises ``TaskError`` unless ``accept``: such a run would score the bounds, not the model.
    """
    if not task.name.startswith("jsonl:"):
        return []
    lines = []
    for config in {(c.schema_name, c.adapter): c for c, _ in grid}.values():
        spec = adapted_schema(config)
        unreachable = [e.id for e in task.examples if not spec.accepts(e.gold)]
        who = f"adapter {config.adapter}" if config.adapter else "the schema's own bounds"
        line = (f"{task.name}: {len(task.examples)} examples; {len(unreachable)} with gold "
                f"that {who} cannot produce" + (f" ({', '.join(unreachable[:10])}"
                                                 f"{' ...' if len(unreachable) > 10 else ''})"
                                                 if unreachable else ""))
        lines.append(line)
        if len(unreachable) > MAX_EXCLUDED_SHARE * len(task.examples) and not accept:
            raise TaskError(line + " (a value longer than its string bound, or more items "
                            "than a list allows)",
                            hint="raise maxLength / maxItems in the schema, evaluate an adapter "
                                 "fine-tuned on such data (it learns the bounds), or pass "
                                 "--accept-unreachable")
    return lines


def run_id(task_name: str, config: ExtractorConfig, options: Mapping[str, Any]) -> str:
    """``<readable slug>-<8 hex>``: the hash covers the task and every non-default option,
    so adding a new ExtractorConfig field with a default keeps old results resumable.

    ``max_attempts`` is resolved from the adapter's card (never the field's default 0);
    it counts as an option where it differs from 2, its default before cards set it."""
    options_set = config.model_dump(exclude_defaults=True)
    if options_set.get("max_attempts") == DEFAULT_ATTEMPTS:
        del options_set["max_attempts"]
    digest = stable_hash({"task": task_name, "config": options_set}, length=8)
    parts = [f"jsonl-{Path(task_name[6:]).stem}" if task_name.startswith("jsonl:") else task_name,
             Path(config.model).name] + ([Path(config.adapter).name] if config.adapter else [])
    parts += [f"{k}={v}" for k, v in options.items()]
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "-", "_".join(parts))[:72]
    return f"{slug}-{digest}"


# --- files ----------------------------------------------------------------------------------

def _resume(path: Path) -> list[dict[str, Any]]:
    """The result lines already written; a torn, unreadable or duplicated line is removed
    from the file first (its example is redone)."""
    rows, skipped = read_jsonl(path, required=RESULT_KEYS)
    kept = list({row["id"]: row for row in reversed(rows)}.values())[::-1]  # first of each id
    if skipped or len(kept) != len(rows):
        rewrite_jsonl(path, kept)
    return kept


def _check_meta(path: Path, meta: Mapping[str, Any]) -> None:
    """Refuse to mix results of two different configs under one name."""
    old = json.loads(path.read_text(encoding="utf-8"))
    before, now = old.get("config", {}), meta["config"]
    changed = [k for k in before.keys() & now.keys() if before[k] != now[k]]
    if old.get("task") != meta["task"] or changed:
        raise ConfigError(f"{path} was written by another configuration "
                          f"({', '.join(changed) or 'task'} differ)",
                          hint="use a new --out folder for a changed pipeline")


# --- one example ----------------------------------------------------------------------------

def _rss_mb() -> float:
    try:
        import psutil
    except ImportError as exc:
        raise ConfigError("psutil is needed to measure memory",
                          hint="pip install 'matextract[eval]'") from exc
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _parses(raw: str) -> bool:
    try:
        json.loads(raw, strict=False)
    except ValueError:
        return False
    return True


def empty_answer(gold: Any, prediction: Any) -> bool | None:
    """True when the gold holds a string or number but the answer none (the small models'
    shortest valid answer); None when the gold is empty itself (nothing to miss)."""
    return None if not filled_paths(gold) else not filled_paths(prediction)


def result_line(task: Task, example: TaskExample, extraction: Extraction | None,
                *, seconds: float, error: str | None = None) -> dict[str, Any]:
    """Everything one example contributes to a report (pure; scores included)."""
    trace = extraction.trace if extraction else []
    attempts = [a for window in trace for a in window["attempts"]]
    best = [window["attempts"][window["best_attempt"] - 1] for window in trace]
    prediction = merge_records(extraction.records) if extraction else None
    # every unit's chosen answer validated (a document's unit records are merged into one)
    valid = bool(best) and all(a.get("record") is not None for a in best)
    return {
        "id": example.id,
        "prediction": prediction,
        "windows": len(trace),
        "raw": [a["raw"] for a in best],  # the chosen attempt's output, one per window
        "parses": bool(best) and all(_parses(a["raw"]) for a in best),
        "valid": valid,
        "attempts": len(attempts),
        "grounded": sum(e.grounded for e in extraction.evidence) if extraction else 0,
        "ungrounded": len(extraction.ungrounded) if extraction else 0,
        "new_tokens": sum(a["generation"].get("new_tokens", 0) for a in attempts),
        "prompt_tokens": sum(a["generation"].get("prompt_tokens", 0) for a in attempts),
        "generation_s": round(sum(a["generation"].get("seconds", 0.0) for a in attempts), 4),
        **{key: sum(a["generation"].get(key, 0) for a in attempts)
           for key in ("forward_passes", "forced_tokens", "grammar_seconds")},
        "seconds": round(seconds, 4),
        "exception": error,  # the pipeline raised on this text (scored as no answer)
        "empty_answer": empty_answer(example.gold, prediction),
        "errors": extraction.errors if extraction else [],
        # every value with its confidence and truth: calibration (eval/calibration.py)
        "values": value_rows(task.schema, example.gold, extraction),
        "gold_values": gold_count(task.schema, example.gold),
        "calibration": extraction.model.get("calibration") if extraction else None,
        **score_prediction(task, example, prediction),
    }


def _extract(extractor: Extractor, task: Task, examples: Sequence[TaskExample], *,
             tolerate: bool) -> list[dict[str, Any]]:
    """Run and score a group of examples (their first answers are decoded as one batch;
    ``seconds`` is each example's share of the group's time).

    A GenerationError is a text's failure (scored as no answer) once the configuration has
    worked at least once; before that it is the configuration's (e.g. a token budget too
    small for the schema) and stops the run. Inside a group it is found by running the
    group's examples one at a time."""
    started = time.perf_counter()
    documents = [Document.from_text(e.text, source=e.id) for e in examples]
    error = None  # only a group of one can fail: a failed larger group is split below
    try:
        extractions: list[Any] = extractor.extract_group(documents)
    except GenerationError as exc:
        if len(examples) > 1:
            return [line for example in examples
                    for line in _extract(extractor, task, [example], tolerate=tolerate)]
        if not tolerate:
            raise
        extractions, error = [None], str(exc)
    share = (time.perf_counter() - started) / len(examples)
    lines = []
    for example, extraction in zip(examples, extractions):
        line = result_line(task, example, extraction, seconds=share, error=error)
        line["rss_mb"] = _rss_mb()
        line["batch_rows"] = len(examples)
        if extractor.loaded.device.startswith("cuda"):
            import torch
            line["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        line["finished_at"] = time.time()
        lines.append(line)
    return lines


# --- the grid run -----------------------------------------------------------------------------

def _parameters(loaded: models.LoadedModel, name: str) -> int | None:
    if name in models.MODELS:  # the registry's figure (int8 layers hide their weights)
        text = models.MODELS[name].parameters
        scale = {"K": 1e3, "M": 1e6, "B": 1e9}.get(text[-1:].upper(), 1)
        return int(float(text.rstrip("KMBkmb")) * scale)
    try:
        return sum(p.numel() for p in loaded.model.parameters())  # type: ignore[attr-defined]
    except AttributeError:
        return None


def _short(rid: str, width: int = 48) -> str:
    return rid if len(rid) <= width else f"{rid[:width - 10]}..{rid[-8:]}"


def _load_key(config: ExtractorConfig) -> tuple:
    return config.model, config.adapter, config.precision, config.device, config.backend


def _release(loaded: models.LoadedModel | None) -> None:
    """Drop a model once its configs are done, so the next model's memory is its own.
    models.load keeps every model for the process; evaluation is the one place that must not."""
    if loaded is None:
        return
    models.unload(loaded)
    gc.collect()
    if loaded.device.startswith("cuda"):
        import torch
        torch.cuda.empty_cache()


def run_grid(task: Task, grid: Sequence[tuple[ExtractorConfig, dict]], *, out: Path,
             limit: int | None = None, progress: bool = True,
             command: str | None = None) -> list[str]:
    """Run every config on the first ``limit`` examples; returns the run ids, in grid order."""
    from tqdm import tqdm

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {limit}")
    out.mkdir(parents=True, exist_ok=True)
    selected = task.examples[:limit]
    groups: dict[tuple, list[tuple[ExtractorConfig, dict]]] = {}
    for item in grid:  # configs sharing a model run together: one load per model
        groups.setdefault(_load_key(item[0]), []).append(item)
    ordered = [item for items in groups.values() for item in items]
    loaded: models.LoadedModel | None = None
    loaded_key: tuple | None = None
    for config, options in ordered:
        rid = run_id(task.name, config, options)
        results, meta_path = out / f"{rid}{RESULTS_SUFFIX}", out / f"{rid}{META_SUFFIX}"
        written = _resume(results)
        done = {row["id"] for row in written}
        todo = [e for e in selected if e.id not in done]
        meta = {"id": rid, "task": task.name, "schema": task.schema, "options": options,
                "config": config.model_dump(mode="json"),
                "few_shot_origins": [x.origin for x in task.few_shot]}
        if meta_path.exists():
            _check_meta(meta_path, meta)
        if not todo:
            continue
        if loaded is None or _load_key(config) != loaded_key:
            _release(loaded)
            loaded = models.load(config.model, device=config.device,
                                 precision=config.precision, adapter=config.adapter,
                                 backend=config.backend)
            loaded_key = _load_key(config)
        extractor = Extractor(config, loaded=loaded, examples=task.few_shot)
        meta["prompt_examples"] = [x.origin for x in extractor.examples]
        meta["model"] = {"name": loaded.name, "precision": loaded.precision,
                         "backend": loaded.backend,
                         "device": loaded.device, "parameters": _parameters(loaded, config.model)}
        meta["command"] = command or " ".join(sys.argv)
        meta["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_atomic(meta_path, json.dumps(meta, indent=1, ensure_ascii=False, default=str))
        if loaded.device.startswith("cuda"):
            import torch
            torch.cuda.reset_peak_memory_stats()
        worked = any(not row.get("exception") for row in written)
        with Appender(results) as appender, \
                tqdm(total=len(selected), initial=len(selected) - len(todo), desc=_short(rid),
                     unit="ex", disable=not progress, file=sys.stderr) as bar:
            for offset in range(0, len(todo), config.batch_size):
                group = todo[offset:offset + config.batch_size]
                for line in _extract(extractor, task, group, tolerate=worked):
                    worked = worked or not line["exception"]
                    appender.write(line)
                    bar.update()
    _release(loaded)
    return [run_id(task.name, config, options) for config, options in grid]
