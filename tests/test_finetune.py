"""LoRA fine-tuning on tiny random LLaMA and OPT models: loss falls, adapters reload and
change the output, a resumed run equals an uninterrupted one, training prompt == inference."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from extraction import prompting
from extraction import models
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.schemas import get_schema
from extraction.types import Document
from finetune.config import FinetuneConfig
from extraction.datasets.splits import training_split
from finetune.data import build_pairs
from finetune.trainer import CARD_FILE, train


def _config(model_dir, **overrides) -> FinetuneConfig:
    values = dict(task="doping", model=str(model_dir), rank=8, alpha=16, dropout=0.0,
                  epochs=1, batch_size=4, learning_rate=5e-3, warmup_steps=0, limit=24,
                  val_fraction=0.25, checkpoint_every=1, eval_every=2, max_length=384,
                  accept_exclusions=True, seed=3)
    values.update(overrides)
    return FinetuneConfig(**values)


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_training_loss_falls_and_the_adapter_changes_the_output(arch, tiny_model_dirs,
                                                                tmp_path):
    config = _config(tiny_model_dirs[arch], epochs=4, limit=8, val_fraction=0.0,
                     learning_rate=5e-2)
    card = train(config, tmp_path / "adapter")
    losses = [loss for _, loss in card["history"]["train"]]
    assert card["complete"] and losses[-1] < losses[0] * 0.9, losses
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert 0 < card["trainable_share"] < 0.5

    text = "Er3+ doped SrLaMgTaO6 phosphors."
    outputs = []
    for adapter in (None, str(tmp_path / "adapter")):
        loaded = models.load(str(tiny_model_dirs[arch]), device="cpu", adapter=adapter)
        extractor = Extractor(ExtractorConfig(max_attempts=1, max_new_tokens=120),
                              loaded=loaded)
        outputs.append(extractor.extract(Document.from_text(text)).trace[0]["attempts"][0]["raw"])
    assert outputs[0] != outputs[1]


def test_resume_after_interrupt_equals_an_uninterrupted_run(tiny_model_dirs, tmp_path):
    config = _config(tiny_model_dirs["llama"])
    whole = train(config, tmp_path / "whole")
    partial = train(config, tmp_path / "resumed", stop_after_steps=2)  # "killed" after step 2
    assert not partial["complete"] and not (tmp_path / "resumed" / "adapter_config.json").exists()
    resumed = train(config, tmp_path / "resumed")
    assert resumed["complete"] and resumed["steps"] == whole["steps"]
    a = load_file(tmp_path / "whole" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["history"]["train"] == whole["history"]["train"]


def test_same_seed_same_adapter(tiny_model_dirs, tmp_path):
    config = _config(tiny_model_dirs["opt"], limit=8)
    train(config, tmp_path / "one")
    train(config, tmp_path / "two")
    a = load_file(tmp_path / "one" / "adapter_model.safetensors")
    b = load_file(tmp_path / "two" / "adapter_model.safetensors")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((tmp_path / "one" / CARD_FILE).read_text())
    assert card["config"]["seed"] == 3 and card["inference"]["few_shot"] == 0


def test_training_prompt_equals_the_inference_prompt(tiny_model_dirs):
    loaded = models.load(str(tiny_model_dirs["llama"]), device="cpu")
    pairs, counts = build_pairs(loaded.tokenizer, FinetuneConfig(
        task="doping", few_shot=0, negatives=0.0, max_length=1024, seed=0, limit=5,
        retry_pairs=0.0))
    _, positives, _ = training_split("doping")
    by_id = {item.id: item for item in positives}
    spec = get_schema("doping")
    assert len(pairs) == 5
    for pair in pairs:
        item = by_id[pair.id]
        inference_prompt = prompting.render(
            loaded.tokenizer, prompting.build_messages(spec, item.text, examples=()))
        assert loaded.tokenizer.decode(pair.prompt_ids) == inference_prompt
        completion = loaded.tokenizer.decode(pair.completion_ids)
        assert json.loads(completion.removesuffix(loaded.tokenizer.eos_token)) == item.gold
    assert counts.pairs == 5


def test_finetune_command_writes_adapter_card_curve_and_merged_model(tiny_model_dirs, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "adapter"
    result = subprocess.run(
        [sys.executable, "-m", "app", "finetune", "--out", str(out), "--model",
         str(tiny_model_dirs["opt"]), "--limit", "8", "--epochs", "1", "--batch-size", "4",
         "--merge"], cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for name in ("adapter_config.json", "adapter_model.safetensors", CARD_FILE,
                 "loss_curve.png", "README.md", "merged/config.json"):
        assert (out / name).exists(), name
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trainable parameters" in (out / "README.md").read_text()
    merged = models.load(str(out / "merged"), device="cpu")
    assert merged.model.config.model_type == "opt"


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_fast_loss_equals_the_textbook_loss_and_gradients(arch, tiny_model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.lora import attach_lora
    from finetune.trainer import collate, summed_loss

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs[arch])
    pairs, _ = build_pairs(tokenizer, FinetuneConfig(
        task="doping", few_shot=0, negatives=0.3, max_length=384, accept_exclusions=True,
        seed=0, limit=4))
    batch = collate(pairs[:4], tokenizer.eos_token_id, "cpu")
    assert batch["shared_prefix"] > 50  # the instructions are shared; the sentences are not
    model = attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dirs[arch]),
                        rank=4, alpha=8, dropout=0.0, targets=None)
    for _, parameter in model.named_parameters():
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=0.02)  # LoRA B starts at zero: make it matter
    model.zero_grad()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    reference = torch.nn.functional.cross_entropy(  # the textbook loss over full logits
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100, reduction="sum")
    reference.backward()
    expected_grads = {name: p.grad.clone() for name, p in model.named_parameters()
                      if p.grad is not None}
    assert expected_grads
    for share in (False, True):
        model.zero_grad()
        loss, count = summed_loss(model, batch, share_prefix=share)
        loss.backward()
        assert count == int((batch["labels"] != -100).sum())
        assert float(loss) == pytest.approx(float(reference), rel=1e-5)
        for name, grad in expected_grads.items():
            torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad,
                                       rtol=1e-3, atol=1e-6, msg=name)


def test_shared_prefix_is_the_common_start_and_leaves_every_row_a_prompt_token():
    from finetune.data import Pair
    from finetune.trainer import shared_prefix_length

    def pair(prompt):
        return Pair(id="x", prompt_ids=prompt, completion_ids=[9])

    assert shared_prefix_length([pair([1, 2, 3, 4]), pair([1, 2, 3, 5, 6])]) == 3
    assert shared_prefix_length([pair([1, 2, 3]), pair([1, 2, 3, 4])]) == 2  # one left
    assert shared_prefix_length([pair([1, 2]), pair([7, 2])]) == 0
    assert shared_prefix_length([pair([1, 2, 3])]) == 0  # nothing to share with
