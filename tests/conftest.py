"""Shared fixtures: tiny random LLaMA/OPT models built from a config, the real default model.

Tiny models borrow the real SmolLM2 tokenizer (prepared once into the matextract cache, as
the README's set-up command does) so that grammars and chat templates are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from extraction import models
from extraction.settings import quiet_libraries

quiet_libraries()


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    spec = models.get_spec(models.DEFAULT_MODEL)
    if not models.is_installed(spec):
        pytest.fail(f"the default model is not installed; run: {spec.install_command}")
    return models.prepare(models.DEFAULT_MODEL)


# Larger than the usual 0.02 so that a 32-wide model's logits can move: with tiny embeddings
# the output stays near-uniform whatever LoRA learns, and no loss could fall.
INIT_STD = 0.3


def _tiny_config(arch: str, vocab_size: int):
    from transformers import Gemma3TextConfig, LlamaConfig, OPTConfig, Qwen2Config

    if arch == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=4096, tie_word_embeddings=True,
                           initializer_range=INIT_STD)
    if arch == "opt":
        return OPTConfig(vocab_size=vocab_size, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=4096,
                         word_embed_proj_dim=32, init_std=INIT_STD)
    if arch == "qwen2":
        return Qwen2Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=4096, tie_word_embeddings=True,
                           initializer_range=INIT_STD)
    if arch == "gemma3_text":  # a window far shorter than the prompt: windowed layers matter
        return Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=1, head_dim=8, sliding_window=24,
                                layer_types=["sliding_attention", "full_attention"],
                                max_position_embeddings=4096, initializer_range=INIT_STD)
    raise ValueError(arch)


def tiny_model_folder(arch: str, tokenizer_dir: Path, folder: Path) -> Path:
    """Save a tiny random model of ``arch`` with the real tokenizer into ``folder``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(_tiny_config(arch, len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dirs(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> dict[str, Path]:
    """Folders holding tiny random LLaMA and OPT models, loadable like any local model."""
    return {arch: tiny_model_folder(arch, default_model_dir,
                                    tmp_path_factory.mktemp(f"tiny-{arch}"))
            for arch in ("llama", "opt")}


@pytest.fixture(params=["llama", "opt"])
def tiny_model(request: pytest.FixtureRequest, tiny_model_dirs: dict[str, Path]):
    return models.load(str(tiny_model_dirs[request.param]), device="cpu")
