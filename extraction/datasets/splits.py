"""Training splits: the annotated texts a model may learn from (never a scored split)."""

from __future__ import annotations

from pathlib import Path

from extraction.datasets import nerre as nerre_data
from extraction.datasets.annotated import AnnotatedText, read_annotated_jsonl
from extraction.datasets.conversion import doping_to_ours, entries_to_ours
from extraction.errors import ConfigError


MULTI = "multi:"
TASKS_HINT = ("use doping, general:K, mof:K (K = 0..4), jsonl:PATH, or several of them as "
              "multi:TASK,TASK,... (e.g. multi:doping,general:0,mof:0)")


def task_parts(task: str) -> list[str]:
    """The tasks a (possibly multi-schema) task is made of: ``multi:doping,general:0`` ->
    ["doping", "general:0"]; any other task -> [task]."""
    if not task.startswith(MULTI):
        return [task]
    parts = [part.strip() for part in task[len(MULTI):].split(",") if part.strip()]
    nested = [part for part in parts if part.startswith(MULTI)]
    if not parts or nested or len(set(parts)) != len(parts):
        raise ConfigError(f"bad multi-schema task {task!r}: it needs one or more different "
                          "tasks, none of them multi:", hint=TASKS_HINT)
    return parts


def training_unit(task: str) -> str:
    """The extraction unit a task's texts are (``ExtractorConfig.unit``): NERRE doping is
    annotated sentence by sentence; the other tasks' texts are given whole (a multi-schema
    task's units differ by schema: ``training_unit`` of each part)."""
    return "sentence" if task == "doping" else "whole"


def training_split(task: str) -> tuple[str, list[AnnotatedText], list[AnnotatedText]]:
    """(schema name, positives, negatives) from a task's TRAINING data only (one schema: a
    multi-schema task is read part by part, ``task_parts``)."""
    if task.startswith(MULTI):
        raise ConfigError(f"{task!r} holds several tasks: read each of task_parts(task)",
                          hint=TASKS_HINT)
    if task == "doping":
        positives, negatives = [], []
        for number, sentence in enumerate(nerre_data.load_doping_sentences(
                "train", relevant_only=False)):
            gold = doping_to_ours(sentence.gold)
            item = AnnotatedText(f"{sentence.doi}#{number}", sentence.text, gold)
            (positives if any(gold.values()) else negatives).append(item)
        return "doping", positives, negatives
    kind, _, fold = task.partition(":")
    if kind in ("general", "mof") and fold.isdigit():
        rows = nerre_data.load_entry_fold(kind, int(fold), split="train")
        items = [AnnotatedText(f"{kind}:{fold}:train:{i}", row.abstract,
                               entries_to_ours(row.entries, kind))
                 for i, row in enumerate(rows)]
        return kind, items, []
    if kind == "jsonl":
        loaded = read_annotated_jsonl(Path(fold))
        return loaded.schema, list(loaded.examples), []
    raise ConfigError(f"unknown fine-tuning task {task!r}", hint=TASKS_HINT)
