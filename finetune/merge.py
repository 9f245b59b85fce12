"""Merge a LoRA adapter into its base model and save a plain model folder."""

from __future__ import annotations

from pathlib import Path

from extraction.models import load


def merge(model: str, adapter: str | None, out: Path) -> Path:
    """Save ``model`` with ``adapter`` merged in (None: the base model as it is)."""
    loaded = load(model, device="cpu", precision="float32", adapter=adapter)  # merged on load
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out
