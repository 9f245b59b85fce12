"""``matextract finetune``: LoRA fine-tuning; every FinetuneConfig field is an option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.options import config_command
from finetune.config import FinetuneConfig


@config_command(command="finetune", config=FinetuneConfig)
def finetune_command(
    config: FinetuneConfig,
    out: Annotated[Path, typer.Option(help="adapter folder to write (re-run to resume)")],
    merge: Annotated[bool, typer.Option(help="also write base+adapter merged into OUT/merged")]
    = False,
    dry_run: Annotated[bool, typer.Option(help="only build the training pairs, print what "
                                               "they hold (pairs, tokens, kinds, exclusions) "
                                               "and exit; nothing is written")] = False,
) -> None:
    """LoRA-fine-tune a model for extraction, in the pipeline's own prompt format."""
    from tqdm import tqdm

    from finetune.trainer import train, training_data, training_plan

    if dry_run:
        _, pairs, summary = training_data(config)
        train_pairs, _, steps = training_plan(config, pairs)
        typer.echo(summary.text())
        typer.echo(f"{len(train_pairs)} pairs trained on: {len(steps)} optimizer steps of "
                   f"{config.batch_size} pairs for {config.epochs} epochs")
        return

    bar = tqdm(desc="LoRA", unit="step")

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.n = step
        bar.set_postfix(loss=f"{loss:.4f}")
        bar.refresh()

    card = train(config, out, on_step=progress,
                 on_data=lambda summary: typer.echo(summary.text(), err=True))
    bar.close()
    typer.echo(json.dumps({k: card[k] for k in ("steps", "train_seconds", "final_train_loss",
                                                 "final_validation_loss", "trainable_share")}))
    if merge:
        from finetune.merge import merge as merge_adapter

        typer.echo(f"merged model: {merge_adapter(config.model, str(out), out / 'merged')}")
