"""LoRA adapters: the shipped ones (package data), resolving names and folders, their cards,
and which one 'auto' picks for a model and schema."""

from __future__ import annotations

import json
from pathlib import Path

from extraction.errors import ModelNotFoundError
from extraction.resources import shipped_adapters_dir

ADAPTER_CARD = "matextract-adapter.json"


def shipped_adapters() -> dict[str, Path]:
    """Adapters shipped with matextract (trained with 'matextract finetune'), by name."""
    root = shipped_adapters_dir()
    if not root.is_dir():
        raise ModelNotFoundError(f"the shipped adapters are missing: no folder {root}",
                                 hint="the installation is incomplete: reinstall matextract")
    return {p.name: p for p in sorted(root.iterdir()) if (p / "adapter_config.json").exists()}


def resolve_adapter(adapter: str) -> Path:
    """A shipped adapter's name or an adapter folder (peft layout) -> its folder."""
    shipped = shipped_adapters()
    if adapter in shipped:
        return shipped[adapter]
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").exists():
        raise ModelNotFoundError(
            f"adapter {adapter!r} not found (no adapter_config.json)",
            hint=f"shipped adapters: {', '.join(shipped) or 'none'}; or pass the folder "
                 "written by 'matextract finetune'")
    return path


AUTO_ADAPTER = "auto"
ADAPTER_HELP = ("LoRA adapter: a folder or a shipped adapter's name; 'none' for the base model; "
                "'auto': the shipped adapter trained for this model and schema, if any")


def adapter_choice(value: str | None) -> str | None:
    """A command-line adapter value: 'none' (any case) or empty means the base model."""
    return None if value is None or value.strip().lower() in ("", "none") else value


def default_adapter(model: str, task: str) -> str | None:
    """The shipped adapter trained for this model and task (by its card), or None."""
    for name, folder in shipped_adapters().items():
        card_path = folder / ADAPTER_CARD
        if not card_path.exists():
            continue
        card = json.loads(card_path.read_text())
        if card.get("base_model") == model and card.get("task") == task:
            return name
    return None


def adapter_card(adapter: str | None) -> dict:
    """The card saved next to an adapter (training data, settings, scores), or {}."""
    if not adapter:
        return {}
    card = resolve_adapter(adapter) / ADAPTER_CARD
    return json.loads(card.read_text()) if card.exists() else {}


def attach_adapter(model: object, adapter: str) -> object:
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(resolve_adapter(adapter))).merge_and_unload()
