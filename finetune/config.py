"""Fine-tuning options: one pydantic model, saved next to every adapter it produces."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from extraction.errors import ConfigError


class FinetuneConfig(BaseModel):
    """Everything that determines an adapter (same config + same seed -> same adapter)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field("doping", description="doping | general:K | mof:K | jsonl:PATH, or "
                      "several as multi:TASK,TASK,... (one adapter for all their schemas, each "
                      "text prompted with its own schema)")
    model: str = Field("smollm2-135m", description="registry name or local model folder")
    rank: int = Field(16, ge=1, description="LoRA rank r")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout")
    target_modules: list[str] | None = Field(
        None, description="module names to adapt; default: every linear layer of the arch")
    lora_layers: int | None = Field(None, ge=1, description="adapt only the top N decoder "
                                    "layers (default: all): the layers below get no "
                                    "gradients, so the backward pass stops at the lowest "
                                    "adapted layer (qwen2.5-1.5b, top 8 of 28: see "
                                    "BENCHMARKS.md for s/step and memory)")
    epochs: float = Field(3.0, gt=0, description="passes over the training pairs")
    learning_rate: float = Field(1e-3, gt=0, description="peak AdamW learning rate (linear "
                                 "warm-up, then linear decay)")
    warmup_steps: int = Field(10, ge=0, description="optimizer steps of linear warm-up")
    batch_size: int = Field(8, ge=1, description="pairs per optimizer step (after accumulation)")
    grad_accumulation: int = Field(1, ge=1, description="micro-batches per optimizer step")
    micro_batch_tokens: int = Field(4096, ge=64, description="most padded tokens per forward "
                                    "pass: long pairs are split into smaller micro-batches "
                                    "(same gradients, bounded memory)")
    gradient_checkpointing: bool = Field(False, description="keep only each decoder layer's "
                                         "input and recompute its forward in the backward "
                                         "pass: activations of one layer at a time instead "
                                         "of all (SmolLM2-135M, 8 pairs a step: peak memory "
                                         "6.6 -> 3.1 GB) at 1.1-1.4x the step time; same "
                                         "gradients")
    max_length: int | None = Field(None, ge=64, description="prompt + completion tokens per "
                                   "pair; default: the longest pair (nothing is cut or left "
                                   "out), longer pairs are excluded and counted")
    accept_exclusions: bool = Field(False, description="train even when more than 2% of the "
                                    "examples are left out (too long, or gold that does not "
                                    "validate); without it training stops and lists them")
    few_shot: int = Field(0, ge=0, description="few-shot examples in the training prompt; "
                                               "inference with this adapter uses the same")
    negatives: float = Field(0.3, ge=0.0, description="sentences with nothing to extract, "
                                                      "as a share of the positive pairs")
    schema_variants: int = Field(0, ge=0, le=8, description="schema variants per text, "
                                 "in addition to its own schema: random field subsets, "
                                 "renamed fields, reworded descriptions, shuffled order, flat "
                                 "parallel lists for lists of objects (the gold transformed "
                                 "to fit), so that the adapter follows the schema it is shown")
    retry_pairs: float = Field(0.3, ge=0.0, le=1.0, description="share of the texts that "
                               "also get a retry pair: the Reflexion retry prompt with "
                               "feedback on a flawed first answer (gold with one mistake the "
                               "evaluator notices), the gold as the completion")
    silver: str | None = Field(None, description="teacher-labelled annotated JSONL "
                               "('matextract distill'), same schema as the task: its texts "
                               "join the task's training texts (those with values as "
                               "positives, the empty ones as negatives), counted apart")
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="held out for validation loss")
    holdout_by_document: bool = Field(False, description="hold out whole documents (all "
                                      "sentences of an abstract), so that 'eval --task "
                                      "heldout-abstracts:ADAPTER' has abstracts to score")
    seed: int = Field(0, description="seeds pair order, negatives, validation split and LoRA init")
    checkpoint_every: int = Field(10, ge=1, description="optimizer steps between checkpoints")
    eval_every: int = Field(20, ge=1, description="optimizer steps between validation losses")
    device: str | None = Field(None, description="cpu | cuda (default: cuda when available)")
    limit: int | None = Field(None, ge=1, description="use only the first N pairs (smoke runs)")

    @model_validator(mode="after")
    def batch_divides(self) -> "FinetuneConfig":
        if self.batch_size % self.grad_accumulation:
            raise ConfigError(f"batch_size={self.batch_size} is not a multiple of "
                              f"grad_accumulation={self.grad_accumulation}",
                              hint="choose grad_accumulation dividing batch_size")
        return self
