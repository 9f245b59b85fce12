"""Which layers get LoRA adapters, per architecture, and wrapping a model with peft."""

from __future__ import annotations

from typing import Any

from extraction.errors import ConfigError

# Every linear layer of the block: adapting all of them beats q/v only for small models.
DEFAULT_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                    "down_proj"],
    "gemma3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}


def target_modules(model_type: str, requested: list[str] | None) -> list[str]:
    if requested:
        return requested
    try:
        return DEFAULT_TARGETS[model_type]
    except KeyError:
        raise ConfigError(f"no default LoRA targets for architecture {model_type!r}",
                          hint="pass target_modules (e.g. q_proj v_proj); known defaults: "
                               + ", ".join(DEFAULT_TARGETS)) from None


def attach_lora(model: Any, *, rank: int, alpha: int, dropout: float,
                targets: list[str] | None, top_layers: int | None = None) -> Any:
    """``top_layers``: adapt only the last N decoder layers. Nothing below them requires a
    gradient, so autograd keeps no activations there and the backward pass ends at the
    lowest adapted layer: the saving that makes a 1.5B model trainable on two cores."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                        task_type="CAUSAL_LM",
                        target_modules=target_modules(model.config.model_type, targets),
                        layers_to_transform=top_layer_indices(model.config, top_layers))
    return get_peft_model(model, config)


def top_layer_indices(model_config: Any, top_layers: int | None) -> list[int] | None:
    """Indices of the last ``top_layers`` decoder layers (None: every layer)."""
    if top_layers is None:
        return None
    count = model_config.get_text_config().num_hidden_layers
    if top_layers > count:
        raise ConfigError(f"lora_layers={top_layers}, but the model has {count} decoder layers",
                          hint=f"choose 1..{count}, or leave it unset to adapt every layer")
    return list(range(count - top_layers, count))


def trainable_share(model: Any) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
