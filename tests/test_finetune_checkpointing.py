"""Activation checkpointing changes no number: the loss, the LoRA gradients and a short
training run are the same with it as without, with the shared instruction prefix and
dropout, on tiny random LLaMA, OPT and Gemma 3 (whose window, 24 tokens, is far shorter than
the prefix, so the prefix cache of its windowed layers is cut). And the layers really are
recomputed, in the prefix pass as in the per-row pass.

LoRA on the top layers only (``lora_layers``) is the other saving: the layers below leave
the autograd graph, and the adapted layers' gradients are those of a full adapter whose lower
parts add nothing."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from extraction.errors import ConfigError
from finetune.config import FinetuneConfig
from finetune.data import build_pairs
from finetune.lora import attach_lora
from finetune.trainer import checkpoint_activations, collate, config_hash, summed_loss, train
from tests.conftest import tiny_model_folder

ARCHS = ["llama", "opt", "gemma3_text"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Ops on tiny models are too small to share among threads: with a busy machine, waiting
    for the second thread made these tests 3 to 30 times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dirs(tiny_model_dirs, tiny_tokenizer_dir, tmp_path_factory):
    gemma = tiny_model_folder("gemma3_text", tiny_tokenizer_dir,
                              tmp_path_factory.mktemp("tiny-gemma3"))
    return {**tiny_model_dirs, "gemma3_text": gemma}


@pytest.fixture(scope="module")
def batch(tiny_tokenizer_dir):
    """Two pairs (the tiny models share one tokenizer): a long shared prefix, then rows of
    different lengths."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    pairs, _ = build_pairs(tokenizer, FinetuneConfig(
        task="doping", few_shot=0, negatives=0.0, retry_pairs=0.0, max_length=384,
        accept_exclusions=True, seed=0, limit=2))
    batch = collate(pairs, tokenizer.eos_token_id, "cpu")
    assert batch["shared_prefix"] > 50 and len(set(map(len, pairs))) == 2
    return batch


def _model(folder, dropout: float, top_layers: int | None = None):
    """A LoRA model in training mode; ``dropout`` is LoRA's and the model's own."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    for name in ("dropout", "attention_dropout"):
        if hasattr(config, name):
            setattr(config, name, dropout)
    torch.manual_seed(0)
    model = attach_lora(AutoModelForCausalLM.from_pretrained(folder, config=config), rank=4,
                        alpha=8, dropout=dropout, targets=None, top_layers=top_layers)
    for parameter in model.parameters():
        if parameter.requires_grad:  # LoRA B starts at zero: make every factor matter
            torch.nn.init.normal_(parameter, std=0.02)
    return model.train()


def _loss_and_grads(model, batch, share: bool) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the same dropout masks for every run
    loss, _ = summed_loss(model, batch, share_prefix=share)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_checkpointing_gives_the_same_loss_and_gradients(arch, dropout, model_dirs, batch):
    model = _model(model_dirs[arch], dropout)
    plain = {share: _loss_and_grads(model, batch, share) for share in (False, True)}
    checkpoint_activations(model)
    for share in (False, True):
        loss, grads = _loss_and_grads(model, batch, share)
        # without dropout the shared prefix changes nothing either (with it, other masks)
        for expected_loss, expected in [plain[share]] if dropout else plain.values():
            assert loss == pytest.approx(expected_loss, rel=1e-5)
            assert grads.keys() == expected.keys()
            for name, grad in grads.items():
                assert grad is not None and grad.abs().sum() > 0, name
                torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-6,
                                           msg=name)


def test_every_layer_is_recomputed_in_both_passes(model_dirs, batch):
    model = _model(model_dirs["llama"], 0.1)
    attention = [m for name, m in model.named_modules() if name.endswith("self_attn")]
    calls = [0]

    def count(*_):
        calls[0] += 1

    handles = [m.register_forward_hook(count) for m in attention]
    _loss_and_grads(model, batch, share=True)
    assert calls[0] == 2 * len(attention)  # the prefix pass and the per-row pass
    checkpoint_activations(model)
    calls[0] = 0
    _loss_and_grads(model, batch, share=True)
    assert calls[0] == 4 * len(attention)  # each again in the backward pass
    for handle in handles:
        handle.remove()


def test_training_with_checkpointing_ends_with_the_same_adapter(model_dirs, tmp_path):
    config = FinetuneConfig(task="doping", model=str(model_dirs["llama"]), rank=4, alpha=8,
                            dropout=0.1, epochs=1, batch_size=2, learning_rate=5e-3,
                            warmup_steps=0, limit=5, negatives=0.0, retry_pairs=0.0,
                            val_fraction=0.2, eval_every=1, max_length=384,
                            accept_exclusions=True, seed=3)
    cards = {on: train(config.model_copy(update={"gradient_checkpointing": on}),
                       tmp_path / str(on)) for on in (False, True)}
    assert cards[True]["complete"] and cards[True]["steps"] == 2  # two rows a step
    assert cards[True]["config"]["gradient_checkpointing"]
    for kind in ("train", "validation"):
        (steps, losses), (expected_steps, expected) = (
            zip(*cards[on]["history"][kind]) for on in (True, False))
        assert steps == expected_steps and losses == pytest.approx(expected, rel=1e-5)
    plain = load_file(tmp_path / "False" / "adapter_model.safetensors")
    recomputed = load_file(tmp_path / "True" / "adapter_model.safetensors")
    assert plain and plain.keys() == recomputed.keys()
    for name in plain:
        torch.testing.assert_close(recomputed[name], plain[name], rtol=1e-3, atol=1e-6)


def test_checkpoints_resume_with_checkpointing_switched_either_way():
    """Checkpoints written before the option existed still resume, and a run may switch it
    on (after running out of memory) or off: it changes no number."""
    # the hash in the checkpoint of a run started before the option existed
    config = FinetuneConfig(task="mof:0", model="gemma3-270m", retry_pairs=0)
    assert config_hash(config) == "e91b47504fd87ced"
    assert config_hash(config.model_copy(update={"gradient_checkpointing": True})) \
        == config_hash(config)
    # how often it validates and saves changes no number either
    assert config_hash(config.model_copy(update={"eval_every": 50, "checkpoint_every": 5})) \
        == config_hash(config)
    assert config_hash(config.model_copy(update={"rank": 8})) != config_hash(config)


@pytest.mark.parametrize("arch", ARCHS)
def test_top_layer_lora_leaves_the_layers_below_out_of_the_backward_pass(arch, model_dirs,
                                                                         batch):
    full = _model(model_dirs[arch], 0.0)
    top = _model(model_dirs[arch], 0.0, top_layers=1)
    adapted = {name: p for name, p in top.named_parameters() if p.requires_grad}
    assert adapted and all(".layers.1." in name for name in adapted)
    with torch.no_grad():  # the same top adapter; the full model's lower adapter adds nothing
        for name, parameter in full.named_parameters():
            if name in adapted:
                adapted[name].copy_(parameter)
            elif parameter.requires_grad and "lora_B" in name:
                parameter.zero_()
    bottom = next(m for name, m in top.named_modules() if name.endswith("layers.0"))
    needs_grad: list[bool] = []
    handle = bottom.register_forward_hook(lambda _m, _a, out: needs_grad.append(
        (out[0] if isinstance(out, tuple) else out).requires_grad))
    loss, grads = _loss_and_grads(top, batch, share=True)
    handle.remove()
    assert len(needs_grad) == 2 and not any(needs_grad)  # prefix and rows: no graph below
    expected_loss, expected = _loss_and_grads(full, batch, share=True)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_top_layer_count_beyond_the_model_is_refused(model_dirs):
    with pytest.raises(ConfigError, match="has 2 decoder layers"):
        _model(model_dirs["llama"], 0.0, top_layers=3)


def test_a_top_layer_adapter_is_saved_loaded_and_described(model_dirs, tmp_path):
    from extraction import models

    config = FinetuneConfig(task="doping", model=str(model_dirs["llama"]), rank=4, alpha=8,
                            epochs=1, batch_size=2, limit=4, negatives=0.0, retry_pairs=0.0,
                            val_fraction=0.25, max_length=384, accept_exclusions=True,
                            lora_layers=1)
    card = train(config, tmp_path / "top")
    assert card["complete"] and card["config"]["lora_layers"] == 1
    saved = load_file(tmp_path / "top" / "adapter_model.safetensors")
    assert saved and all(".layers.1." in name for name in saved)
    assert "top 1 decoder layers" in (tmp_path / "top" / "README.md").read_text()
    assert config_hash(config) != config_hash(config.model_copy(update={"lora_layers": None}))
    loaded = models.load(str(model_dirs["llama"]), device="cpu", adapter=str(tmp_path / "top"))
    base = models.load(str(model_dirs["llama"]), device="cpu").model.state_dict()
    changed = {name for name, weight in loaded.model.state_dict().items()
               if not torch.equal(weight, base[name])}
    assert changed and all(".layers.1." in name for name in changed)
