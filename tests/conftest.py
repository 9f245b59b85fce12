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
    from transformers import LlamaConfig, OPTConfig

    if arch == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=4096, tie_word_embeddings=True,
                           initializer_range=INIT_STD)
    if arch == "opt":
        return OPTConfig(vocab_size=vocab_size, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=4096,
                         word_embed_proj_dim=32, init_std=INIT_STD)
    raise ValueError(arch)


@pytest.fixture(scope="session")
def tiny_model_dirs(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> dict[str, Path]:
    """Folders holding tiny random LLaMA and OPT models, loadable like any local model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    folders = {}
    for arch in ("llama", "opt"):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_tiny_config(arch, len(tokenizer)))
        folder = tmp_path_factory.mktemp(f"tiny-{arch}")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[arch] = folder
    return folders


@pytest.fixture(params=["llama", "opt"])
def tiny_model(request: pytest.FixtureRequest, tiny_model_dirs: dict[str, Path]):
    return models.load(str(tiny_model_dirs[request.param]), device="cpu")
