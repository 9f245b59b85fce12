"""LoRA adapters: the shipped ones (package data), resolving names and folders, their cards,
and which one 'auto' picks for a model and schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from extraction.errors import MatextractError, ModelNotFoundError
from extraction.resources import shipped_adapters_dir
from extraction.schemas import builtin_names, get_schema
from extraction.storage.fileio import write_atomic

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


def card_schemas(card: dict) -> list[str]:
    """The schemas an adapter was trained on (its card's ``schemas``; cards written before
    multi-schema training name only their task: ``general:0`` was trained on general)."""
    if "schemas" in card:
        return list(card["schemas"])
    kind = str(card.get("task", "")).partition(":")[0]
    return [kind] if kind in builtin_names() else []


def is_multi_schema(card: dict) -> bool:
    """Trained on several schemas (``finetune --task multi:...``): 'auto' may use it for a
    schema it was not trained on."""
    return bool(card.get("multi_schema"))


def default_adapter(model: str, schema: str) -> str | None:
    """The shipped adapter 'auto' picks for this model and schema, or None: one trained for
    the schema alone always wins; else a multi-schema adapter for the model, one trained on
    the schema first (any schema, a user's too, is then read with it)."""
    multi: list[tuple[bool, str]] = []
    for name, folder in shipped_adapters().items():
        card_path = folder / ADAPTER_CARD
        if not card_path.exists():
            continue
        card = json.loads(card_path.read_text())
        if card.get("base_model") != model:
            continue
        if is_multi_schema(card):
            multi.append((schema not in card_schemas(card), name))
        elif schema in card_schemas(card):
            return name
    return min(multi)[1] if multi else None


def adapter_card(adapter: str | None) -> dict:
    """The card saved next to an adapter (training data, settings, scores), or {}."""
    if not adapter:
        return {}
    card = resolve_adapter(adapter) / ADAPTER_CARD
    return json.loads(card.read_text()) if card.exists() else {}


def inference_setting(card: dict, key: str, schema: str) -> Any:
    """What an adapter's card says inference should use for ``key`` (few_shot, unit,
    bounds, max_attempts) with ``schema``, or None: a multi-schema card's entry for that
    schema where it has one, else the card's own (single-schema cards have only that)."""
    inference = card.get("inference", {})
    per_schema = inference.get("schemas") or {}
    entry = per_schema.get(schema) or per_schema.get(_schema_name(schema, per_schema)) or {}
    return entry[key] if key in entry else inference.get(key)


def _schema_name(schema: str, known: dict) -> str | None:
    """A schema given as a file or import path -> its name (the key cards use); None when
    there is nothing to look up or it cannot be loaded (the run reports that itself)."""
    if not known or schema in builtin_names():
        return None
    try:
        return get_schema(schema).name
    except MatextractError:
        return None


def update_card(adapter: str, edit: Callable[[dict], None]) -> Path:
    """Apply ``edit`` to an adapter's card and write it back whole (a setting chosen after
    training, e.g. ``inference.max_attempts``)."""
    path = resolve_adapter(adapter) / ADAPTER_CARD
    card = json.loads(path.read_text()) if path.exists() else {}
    edit(card)
    write_atomic(path, json.dumps(card, indent=2) + "\n")
    return path


def attach_adapter(model: object, adapter: str) -> object:
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(resolve_adapter(adapter))).merge_and_unload()
