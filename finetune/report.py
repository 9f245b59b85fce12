"""What a finished adapter leaves beside its weights for people: a loss curve and a README."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_loss_curve(card: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=120)
    train = card["history"]["train"]
    axes.plot([s for s, _ in train], [v for _, v in train], label="train (per step)", lw=1)
    validation = card["history"]["validation"]
    if validation:
        axes.plot([s for s, _ in validation], [v for _, v in validation], "o-",
                  label="validation (held out)")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss per completion token")
    axes.set_title(f"LoRA on {card['base_model']} for {card['task']}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def readme(card: dict[str, Any]) -> str:
    config = card["config"]
    data = card["data"]
    lines = [
        f"# LoRA adapter: {card['base_model']} for {card['task']}",
        "",
        "Trained with `matextract finetune` (standard peft layout: load with "
        "`--adapter <this folder>` or by name if shipped in `data/adapters/`).",
        "",
        "| | |", "|---|---|",
        f"| base model | {card['base_model']} |",
        f"| task / data | {card['task']}: {data['train_pairs']} training pairs "
        f"({data['positives']} annotated, {data['negatives']} negatives sampled), "
        f"{data['validation_pairs']} held out |",
        f"| LoRA | r={config['rank']}, alpha={config['alpha']}, dropout={config['dropout']}, "
        f"targets={config['target_modules'] or 'all linear layers'}, "
        f"{_layers(config.get('lora_layers'))} |",
        f"| trainable parameters | {card['trainable_parameters']:,} of "
        f"{card['all_parameters']:,} ({100 * card['trainable_share']:.2f}%) |",
        f"| optimisation | AdamW lr={config['learning_rate']}, batch {config['batch_size']}, "
        f"{config['epochs']} epochs = {card['steps']} steps, seed {config['seed']} |",
        f"| schemas | {', '.join(card.get('schemas', [])) or '–'} |",
        f"| pairs by kind | {_kinds(data)} |",
        f"| prompt | the pipeline's own, {config['few_shot']} few-shot examples |",
        f"| time | {card['train_seconds']} s ({card['seconds_per_step']} s/step on "
        f"{card['device']}, {card['torch_threads']} threads) |",
        f"| final loss | train {_rounded(card['final_train_loss'])}, validation "
        f"{_rounded(card['final_validation_loss'])} |",
        "",
        "![loss curve](loss_curve.png)",
    ]
    if card.get("evaluation"):
        lines += ["", "## Test scores", "", card["evaluation"]]
    return "\n".join(lines) + "\n"


def _kinds(data: dict[str, Any]) -> str:
    """"480 original, 480 variant (subset 240, ...), 144 retry (add 60, ...)"."""
    kinds = data.get("pairs_by_kind") or {"original": data["pairs"]}
    details = {"variant": data.get("variant_changes"), "retry": data.get("retry_perturbations")}
    return ", ".join(
        f"{count} {kind}" + (" (" + ", ".join(f"{k} {v}" for k, v in details[kind].items())
                             + ")" if details.get(kind) else "")
        for kind, count in kinds.items() if count)


def _rounded(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _layers(top: int | None) -> str:
    return f"top {top} decoder layers" if top else "every decoder layer"
