"""The CUDA path the product card names: the pipeline (bf16, packed batches, constrained) and
a LoRA step on a GPU. Marked ``gpu`` and skipped without CUDA, so CI never needs one; run
them where a GPU is lent with ``pytest -m gpu``."""

from __future__ import annotations

import json

import pytest
import torch

from extraction import models
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.schemas import get_schema
from extraction.types import Document
from finetune.config import FinetuneConfig
from finetune.trainer import train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

TEXTS = ["Er3+ doped SrLaMgTaO6 phosphors were prepared.", "Mn-doped ZnO films.",
         "Nothing doped here, only a furnace."]


def test_pipeline_runs_on_cuda_in_bf16_with_packed_batches(tiny_model_dirs):
    config = ExtractorConfig(model=str(tiny_model_dirs["llama"]), device="cuda",
                             max_attempts=1, max_new_tokens=120, batch_size=3)
    extractor = Extractor(config)
    assert extractor.loaded.backend == "transformers"  # auto: llama.cpp is for CPU
    assert extractor.loaded.precision == "bfloat16"
    assert next(extractor.loaded.model.parameters()).is_cuda
    results = extractor.extract_many([Document.from_text(text) for text in TEXTS])
    spec = get_schema("doping")
    for result in results:
        for attempt in result.trace[0]["attempts"]:  # constrained: always the schema's JSON
            spec.model.model_validate(json.loads(attempt["raw"]))


def test_a_lora_step_on_cuda_lowers_the_loss(tiny_model_dirs, tmp_path):
    config = FinetuneConfig(task="doping", model=str(tiny_model_dirs["llama"]), device="cuda",
                            rank=8, alpha=16, dropout=0.0, epochs=4, batch_size=4,
                            learning_rate=5e-2, warmup_steps=0, limit=8, val_fraction=0.0,
                            checkpoint_every=1, eval_every=2, max_length=384,
                            accept_exclusions=True, seed=3)
    card = train(config, tmp_path / "adapter")
    losses = [loss for _, loss in card["history"]["train"]]
    assert card["complete"] and losses[-1] < losses[0], losses
    reloaded = models.load(str(tiny_model_dirs["llama"]), device="cuda",
                           adapter=str(tmp_path / "adapter"))
    assert next(reloaded.model.parameters()).is_cuda
