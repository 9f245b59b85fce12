"""Shared fixtures: tiny random LLaMA/OPT/Qwen2/Gemma 3 models built from a config, and the
real default model.

Tiny models need no shipped weights. Their tokenizer is a byte-level BPE trained in the
session (about a second) on this project's prompts and the bundled NERRE texts, with a
ChatML template like SmolLM2's: every byte is a token, so xgrammar builds its vocabulary
from it and JSON grammars, chat templates and stop tokens behave as with a real model.
Only end-to-end tests (marked ``slow``) use ``default_model_dir``, the prepared SmolLM2.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from extraction import models, prompting
from extraction.resources import nerre_dir
from extraction.schemas import builtin_names, get_schema
from extraction.settings import quiet_libraries

quiet_libraries()


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The prepared SmolLM2 folder (real weights: only for tests marked ``slow``)."""
    spec = models.get_spec(models.DEFAULT_MODEL)
    if not models.is_installed(spec):
        pytest.fail(f"the default model is not installed; run: {spec.install_command}")
    return models.prepare(models.DEFAULT_MODEL)


# The ids SmolLM2 gives them, so configs' default bos/eos ids (1, 2) mean the same tokens.
PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
TINY_VOCAB_SIZE = 4096
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer_corpus() -> Iterator[str]:
    """Prompts and answers of every built-in schema, then the NERRE sentences and answers."""
    for name in builtin_names():
        for message in prompting.build_messages(get_schema(name), "Mn-doped ZnO films."):
            yield message["content"]
    nerre = nerre_dir()
    for item in json.loads((nerre / "doping" / "data" / "train.json").read_text()):
        yield item["text"]
    for name in ("general_materials_information_annotations.jsonl", "mof_annotations.jsonl"):
        for line in (nerre / "general_and_mofs" / "data" / name).read_text().splitlines():
            row = json.loads(line)
            yield row["prompt"]
            yield row["completion"]


def build_tiny_tokenizer(folder: Path) -> Path:
    """Train a small byte-level BPE tokenizer and save it, transformers-style, to ``folder``."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TINY_VOCAB_SIZE, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(_tokenizer_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=BOS, eos_token=EOS,
                                        pad_token=PAD, unk_token=PAD,
                                        chat_template=CHAT_TEMPLATE)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


# Larger than the usual 0.02 so that a 32-wide model's logits can move: with tiny embeddings
# the output stays near-uniform whatever LoRA learns, and no loss could fall.
INIT_STD = 0.3


def _tiny_config(arch: str, vocab_size: int, token_ids: dict[str, int]):
    from transformers import Gemma3TextConfig, LlamaConfig, OPTConfig, Qwen2Config

    if arch == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=4096, tie_word_embeddings=True,
                           initializer_range=INIT_STD, **token_ids)
    if arch == "opt":
        return OPTConfig(vocab_size=vocab_size, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=4096,
                         word_embed_proj_dim=32, init_std=INIT_STD, **token_ids)
    if arch == "qwen2":
        return Qwen2Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=4096, tie_word_embeddings=True,
                           initializer_range=INIT_STD, **token_ids)
    if arch == "gemma3_text":  # a window far shorter than the prompt: windowed layers matter
        return Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=1, head_dim=8, sliding_window=24,
                                layer_types=["sliding_attention", "full_attention"],
                                max_position_embeddings=4096, initializer_range=INIT_STD,
                                **token_ids)
    raise ValueError(arch)


def tiny_model_folder(arch: str, tokenizer_dir: Path, folder: Path) -> Path:
    """Save a tiny random model of ``arch`` with the tokenizer in ``tokenizer_dir`` into
    ``folder``; its config names the tokenizer's bos/eos/pad ids."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    token_ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                 "pad_token_id": tokenizer.pad_token_id}
    torch.manual_seed(0)
    config = _tiny_config(arch, len(tokenizer), token_ids)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dirs(tiny_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> dict[str, Path]:
    """Folders holding tiny random LLaMA and OPT models, loadable like any local model."""
    return {arch: tiny_model_folder(arch, tiny_tokenizer_dir,
                                    tmp_path_factory.mktemp(f"tiny-{arch}"))
            for arch in ("llama", "opt")}


@pytest.fixture(params=["llama", "opt"])
def tiny_model(request: pytest.FixtureRequest, tiny_model_dirs: dict[str, Path]):
    return models.load(str(tiny_model_dirs[request.param]), device="cpu")


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``matextract ARGS...`` in this process, as the entry point would (``run_app``
    turns our errors into ``error: ...`` and exit code 2)."""
    from app.cli.main import app
    from app.cli.running import run_app

    def run(*args: str) -> Ran:
        capsys.readouterr()  # drop anything printed before
        monkeypatch.setattr(sys, "argv", ["matextract", *args])
        try:
            run_app(app)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run
