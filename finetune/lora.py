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
                targets: list[str] | None) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                        task_type="CAUSAL_LM",
                        target_modules=target_modules(model.config.model_type, targets))
    return get_peft_model(model, config)


def trainable_share(model: Any) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
