"""Training splits: the annotated texts a model may learn from (never a scored split)."""

from __future__ import annotations

from pathlib import Path

from extraction.datasets import nerre as nerre_data
from extraction.datasets.annotated import AnnotatedText, read_annotated_jsonl
from extraction.datasets.conversion import doping_to_ours, entries_to_ours
from extraction.errors import ConfigError


def training_unit(task: str) -> str:
    """The extraction unit a task's texts are (``ExtractorConfig.unit``): NERRE doping is
    annotated sentence by sentence; the other tasks' texts are given whole."""
    return "sentence" if task == "doping" else "whole"


def training_split(task: str) -> tuple[str, list[AnnotatedText], list[AnnotatedText]]:
    """(schema name, positives, negatives) from a task's TRAINING data only."""
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
    raise ConfigError(f"unknown fine-tuning task {task!r}",
                      hint="use doping, general:K, mof:K (K = 0..4) or jsonl:PATH")
