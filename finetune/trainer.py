"""LoRA training loop: completion-only loss, gradient accumulation, checkpoints, resume.

Determinism: the batch order is fixed by the seed up front and the dropout RNG is re-seeded
at every step, so a run resumed from a checkpoint ends with the same adapter as an
uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from extraction.storage.fileio import write_atomic
from extraction.config import DEFAULT_ATTEMPTS
from extraction.datasets.splits import MULTI, task_parts, training_unit
from extraction.storage.hashing import stable_hash
from extraction.models import ADAPTER_CARD, choose_device, resolve_model_dir
from finetune.config import FinetuneConfig
from finetune.data import Pair, build_pairs, document_of, split_validation
from finetune.summary import DataSummary
from finetune.lora import attach_lora, trainable_share
from finetune.report import readme, write_loss_curve

CHECKPOINT_DIR = "checkpoint"
CARD_FILE = ADAPTER_CARD


@dataclass
class History:
    """Losses as training goes; saved in checkpoints and in the adapter card."""

    train: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    validation: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0


# Options added after the first adapters: at these values they change nothing, and are left
# out of the hash so that a checkpoint written before they existed still resumes.
NEUTRAL = {"schema_variants": 0, "retry_pairs": 0.0, "silver": None, "lora_layers": None}
# Options that change how a step is computed, never its numbers: a run may resume with them
# switched (e.g. checkpointing turned on after running out of memory).
EXACT = ("gradient_checkpointing",)
# How often a run is validated and saved: never the adapter's numbers either, so a run may
# resume with them changed (validation made rarer when it costs more than the steps). They
# are hashed at their defaults, which keeps the hashes of checkpoints written before.
SCHEDULE = ("eval_every", "checkpoint_every")


def config_hash(config: FinetuneConfig) -> str:
    """Identifies what a checkpoint belongs to (device and limits of a smoke run included)."""
    values = config.model_dump(mode="json")
    values.update({key: FinetuneConfig.model_fields[key].default for key in SCHEDULE})
    return stable_hash({key: value for key, value in values.items() if key not in EXACT
                        and (key not in NEUTRAL or value != NEUTRAL[key])})


def batch_order(n_pairs: int, *, batch_size: int, epochs: float, seed: int) -> list[list[int]]:
    """Every step's pair indices, fixed by the seed (epochs may be fractional)."""
    total = math.ceil(n_pairs * epochs / batch_size)
    indices: list[int] = []
    epoch = 0
    while len(indices) < total * batch_size:
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        indices.extend(torch.randperm(n_pairs, generator=generator).tolist())
        epoch += 1
    return [indices[s * batch_size:(s + 1) * batch_size] for s in range(total)]


def shared_prefix_length(pairs: list[Pair]) -> int:
    """Prompt tokens every pair of a batch starts with (the pipeline's fixed instructions).

    At least one prompt token of every row is left out of it, so the logits that predict
    the first completion token are computed in the per-row pass.
    """
    if len(pairs) < 2:
        return 0
    first, length = pairs[0].prompt_ids, min(len(p.prompt_ids) for p in pairs) - 1
    for pair in pairs[1:]:
        same = 0
        while same < length and pair.prompt_ids[same] == first[same]:
            same += 1
        length = same
    return max(length, 0)


def collate(pairs: list[Pair], pad_id: int, device: str) -> dict[str, Any]:
    """Right-padded batch; labels are -100 on the prompt and the padding."""
    width = max(len(p) for p in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, pair in enumerate(pairs):
        sequence = pair.prompt_ids + pair.completion_ids
        ids[row, :len(sequence)] = torch.tensor(sequence)
        labels[row, len(pair.prompt_ids):len(sequence)] = torch.tensor(pair.completion_ids)
        mask[row, :len(sequence)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "labels": labels.to(device), "shared_prefix": shared_prefix_length(pairs)}


def summed_loss(model: Any, batch: dict[str, Any], *,
                share_prefix: bool = True) -> tuple[torch.Tensor, int]:
    """Sum of token losses over completion tokens, and how many there were.

    Two savings, both exact: the instructions every row starts with go through the model
    once per batch (their KV cache is repeated to every row, and the gradient flows back
    through the copies), and only the positions that predict a completion token reach the
    LM head (``_head_only_at``). With a few hundred shared instruction tokens, short
    sentences and a large vocabulary (Gemma: 262k) this is most of a training step.
    """
    labels, ids, mask = batch["labels"], batch["input_ids"], batch["attention_mask"]
    predicting = torch.zeros_like(labels, dtype=torch.bool)
    predicting[:, :-1] = labels[:, 1:] != -100  # position t predicts token t+1
    targets = labels[:, 1:][predicting[:, :-1]]
    prefix = batch["shared_prefix"] if share_prefix else 0
    if prefix:
        shared = frozen_prefix_cache()(model.config)
        # use_cache=False: the model makes no cache of its own (ours is passed)
        model(input_ids=ids[:1, :prefix], past_key_values=shared, use_cache=False,
              logits_to_keep=1)
        with _head_only_at(model, predicting[:, prefix:]):
            logits = model(input_ids=ids[:, prefix:], attention_mask=mask,
                           past_key_values=shared.repeated(ids.shape[0]), use_cache=False,
                           logits_to_keep=0).logits
    else:
        with _head_only_at(model, predicting):
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False,
                           logits_to_keep=0).logits
    loss = torch.nn.functional.cross_entropy(logits[0].float(), targets, reduction="sum")
    return loss, int(targets.numel())


@functools.cache
def frozen_prefix_cache() -> type:
    """The ``FrozenPrefixCache`` class, built on first use (transformers loads lazily)."""
    from transformers import DynamicCache

    class FrozenPrefixCache(DynamicCache):
        """A KV cache that forward passes read and never write, so that activation
        checkpointing can recompute a layer exactly.

        ``DynamicCache.update`` appends a layer's new keys and values: a layer recomputed in
        the backward pass would append them a second time. Here ``update`` returns the cached
        states followed by the new ones and stores nothing, which makes every decoder layer
        a pure function of its inputs. While a layer has nothing cached (the pass over the
        shared prefix) its states are remembered instead (a recompute overwrites them with
        equal ones), to become the prefix of the next pass: ``repeated``.
        """

        def __init__(self, config: Any,
                     prefix: list[tuple[torch.Tensor | None, torch.Tensor | None]] | None = None
                     ) -> None:
            # DynamicCache stores ``prefix`` its own way: a sliding-window layer keeps its window
            super().__init__(ddp_cache_data=prefix, config=config)
            self.config = config
            self.seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
                   *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            layer = self.layers[layer_idx]
            if not layer.is_initialized:
                self.seen[layer_idx] = (key_states, value_states)
                return key_states, value_states
            return (torch.cat([layer.keys, key_states], dim=-2),  # (B, heads, cached + T, D)
                    torch.cat([layer.values, value_states], dim=-2))

        def repeated(self, rows: int) -> "FrozenPrefixCache":
            """A cache of the states this one saw, repeated to ``rows`` rows (the gradient
            flows back through the copies)."""
            cache = FrozenPrefixCache(self.config, [self.seen.get(i, (None, None))
                                                    for i in range(len(self.layers))])
            cache.batch_repeat_interleave(rows)
            return cache

    return FrozenPrefixCache


def checkpoint_activations(model: Any) -> None:
    """Recompute each decoder layer's forward in the backward pass instead of keeping its
    activations (``FinetuneConfig.gradient_checkpointing``); gradients stay the same.

    Non-reentrant ``torch.utils.checkpoint`` restores the RNG state before a recompute (same
    dropout masks) and needs no input that requires grad, so the hook transformers adds to
    make the embeddings' output require one is removed (it would cost a backward through
    the first layer's frozen weights). transformers drops the KV cache of a checkpointed
    layer, which would lose the shared prefix; ``summed_loss`` passes only caches that are
    never written (``FrozenPrefixCache``), which a recompute reads the same, so the layers
    keep them (``_can_checkpoint_with_cache``, meant for layers that only read the cache).
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.disable_input_require_grads()
    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer):
            module._can_checkpoint_with_cache = True


@contextmanager
def _head_only_at(model: Any, positions: torch.Tensor) -> Iterator[None]:
    """While active, the LM head sees only the hidden states at ``positions`` (a (B, T) mask),
    as one (1, N, H) sequence, so the model returns (1, N, V) logits."""
    def gather(_module: Any, args: tuple) -> tuple:
        return (args[0][positions].unsqueeze(0), *args[1:])

    handle = model.get_output_embeddings().register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def rows_per_pass(pairs: list[Pair], rows: int, max_tokens: int) -> int:
    """Pairs per forward pass: at most ``rows``, fewer when the longest pair times the rows
    would pass ``max_tokens`` (activation memory grows with padded tokens, and attention
    with their square: long user paragraphs would otherwise exhaust memory)."""
    longest = max((len(p) for p in pairs), default=1)
    return max(1, min(rows, max_tokens // longest))


def validation_loss(model: Any, pairs: list[Pair], pad_id: int, device: str,
                    batch_size: int) -> float | None:
    if not pairs:
        return None
    model.eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            loss, count = summed_loss(model, collate(pairs[start:start + batch_size], pad_id,
                                                     device))
            total, tokens = total + float(loss), tokens + count
    model.train()
    return total / max(tokens, 1)


def _save_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any, step: int,
                     history: History, digest: str) -> None:
    """All or nothing: written into a temporary folder, then renamed over the old one."""
    from peft import get_peft_model_state_dict

    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step,
                "history": history.__dict__, "config_hash": digest}, staging / "state.pt")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any,
                     digest: str) -> tuple[int, History]:
    from peft import set_peft_model_state_dict

    state_file = folder / "state.pt"
    if not state_file.exists():
        return 0, History()
    state = torch.load(state_file, weights_only=False)
    if state["config_hash"] != digest:  # a checkpoint of other settings: do not mix
        warnings.warn(f"{folder}: the checkpoint was made with other settings; training starts "
                      "over (use another --out to keep both)", stacklevel=2)
        return 0, History()
    set_peft_model_state_dict(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    history = History(**state["history"])
    history.train = [tuple(x) for x in history.train]
    history.validation = [tuple(x) for x in history.validation]
    return int(state["step"]), history


def train(config: FinetuneConfig, out: Path, *, stop_after_steps: int | None = None,
          on_step: Callable[[int, int, float], None] | None = None,
          on_data: Callable[[DataSummary], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a LoRA adapter into ``out``; returns the adapter card.

    ``on_data`` sees what the training data holds and leaves out before the first step;
    too much left out stops here (``ExcludedExamplesError``), before anything is written.
    """
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    device = choose_device(config.device)
    display, source = resolve_model_dir(config.model)
    tokenizer, pairs, summary = training_data(config)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if on_data is not None:
        on_data(summary)
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    model = attach_lora(model, rank=config.rank, alpha=config.alpha, dropout=config.dropout,
                        targets=config.target_modules, top_layers=config.lora_layers)
    if config.gradient_checkpointing:
        checkpoint_activations(model)
    model.train()
    train_pairs, val_pairs, steps = training_plan(config, pairs)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=config.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps))
        * max(0.0, 1 - s / max(1, len(steps))))
    digest = config_hash(config)
    out.mkdir(parents=True, exist_ok=True)
    start, history = _load_checkpoint(out / CHECKPOINT_DIR, model, optimizer, scheduler, digest)
    micro = config.batch_size // config.grad_accumulation

    for step in range(start, len(steps)):
        if stop_after_steps is not None and step >= stop_after_steps:
            break
        step_started = time.perf_counter()
        torch.manual_seed(config.seed * 100_003 + step)  # dropout: same masks after a resume
        batch_pairs = [train_pairs[i] for i in steps[step]]
        tokens = sum(len(p.completion_ids) for p in batch_pairs)
        loss_total = 0.0
        rows = rows_per_pass(batch_pairs, micro, config.micro_batch_tokens)
        for start_micro in range(0, len(batch_pairs), rows):
            loss, _ = summed_loss(model, collate(batch_pairs[start_micro:start_micro + rows],
                                                 pad_id, device))
            (loss / tokens).backward()
            loss_total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        history.train.append((step + 1, loss_total / tokens))
        history.seconds += time.perf_counter() - step_started
        last = step + 1 == len(steps)
        if (step + 1) % config.eval_every == 0 or last:
            value = validation_loss(model, val_pairs, pad_id, device,
                                    rows_per_pass(val_pairs, micro, config.micro_batch_tokens))
            if value is not None:
                history.validation.append((step + 1, value))
        if (step + 1) % config.checkpoint_every == 0 or last:
            _save_checkpoint(out / CHECKPOINT_DIR, model, optimizer, scheduler, step + 1,
                             history, digest)
        if on_step is not None:
            on_step(step + 1, len(steps), loss_total / tokens)

    done = len(history.train) == len(steps)
    trainable, total = trainable_share(model)
    card = {
        "format": "1", "base_model": display, "task": config.task, "config": config.model_dump(),
        "complete": done, "steps": len(history.train), "total_steps": len(steps),
        "data": {**summary.counts(), "train_pairs": len(train_pairs),
                 "validation_pairs": len(val_pairs),
                 # which training texts were held out: 'matextract eval --task heldout:ADAPTER'
                 "validation_ids": [pair.id for pair in val_pairs],
                 # documents none of whose texts were trained on ('heldout-abstracts:ADAPTER')
                 "validation_documents": sorted({document_of(p.id) for p in val_pairs})
                 if config.holdout_by_document else []},
        "trainable_parameters": trainable, "all_parameters": total,
        "trainable_share": round(trainable / total, 5),
        "train_seconds": round(history.seconds, 1),
        "seconds_per_step": round(history.seconds / max(1, len(history.train)), 2),
        "device": device, "torch_threads": torch.get_num_threads(),
        "peak_memory_mb": peak_memory_mb(device),
        "final_train_loss": history.train[-1][1] if history.train else None,
        "final_validation_loss": history.validation[-1][1] if history.validation else None,
        "history": {"train": history.train, "validation": history.validation},
        "wall_seconds_this_run": round(time.perf_counter() - started, 1),
        "schemas": list(summary.bounds),  # 'auto' picks adapters by them
        "multi_schema": config.task.startswith(MULTI),
        "inference": inference_card(config, summary),
    }
    if done:
        model.save_pretrained(out)  # standard peft layout: adapter_config.json + safetensors
        store_bf16(out / "adapter_model.safetensors")
        write_atomic(out / CARD_FILE, json.dumps(card, indent=2) + "\n")
        write_loss_curve(card, out / "loss_curve.png")
        write_atomic(out / "README.md", readme(card))  # replaces peft's empty template
    return card


def training_data(config: FinetuneConfig) -> tuple[Any, list[Pair], DataSummary]:
    """(tokenizer, pairs, summary) of a config: what ``train`` uses and ``--dry-run``
    prints, without loading the model."""
    from transformers import AutoTokenizer

    _, source = resolve_model_dir(config.model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    pairs, summary = build_pairs(tokenizer, config)
    return tokenizer, pairs, summary


def training_plan(config: FinetuneConfig, pairs: list[Pair]
                  ) -> tuple[list[Pair], list[Pair], list[list[int]]]:
    """(training pairs, validation pairs, every step's pair indices)."""
    train_pairs, val_pairs = split_validation(pairs, config.val_fraction,
                                              by_document=config.holdout_by_document)
    steps = batch_order(len(train_pairs), batch_size=config.batch_size, epochs=config.epochs,
                        seed=config.seed)
    return train_pairs, val_pairs, steps


def inference_card(config: FinetuneConfig, summary: DataSummary) -> dict[str, Any]:
    """What inference must give this adapter (``models.inference_setting`` reads it): its
    prompt, the unit it was trained on, the string and list bounds raised for the gold, and
    Reflexion attempts (``matextract eval --choose-attempts`` sets them on held-out data).

    A multi-schema adapter has an entry per schema it was trained on; its own settings are
    those for any other schema (no bounds learnt, texts read whole)."""
    parts = task_parts(config.task)
    common = {"few_shot": config.few_shot, "max_attempts": DEFAULT_ATTEMPTS}
    if len(parts) == 1 and not config.task.startswith(MULTI):
        (bounds,) = summary.bounds.values()
        return {**common, "unit": training_unit(config.task), "bounds": bounds.to_dict()}
    units = {name: training_unit(part) for name, part in zip(summary.bounds, parts)}
    return {**common, "unit": "whole", "bounds": {},
            "schemas": {name: {"unit": units[name], "bounds": bounds.to_dict()}
                        for name, bounds in summary.bounds.items()}}


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process so far (the GPU's when training there), in MB."""
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def store_bf16(weights: Path) -> None:
    """Adapters ship in bfloat16: half the bytes, and LoRA deltas lose nothing that shows in
    the answers (loading casts them back to the model's dtype)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    save_file({name: t.to(torch.bfloat16).contiguous() for name, t in tensors.items()},
              str(weights), metadata={"format": "pt"})
