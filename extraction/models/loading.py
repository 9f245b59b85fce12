"""Loading a model for inference: device, precision (incl. int8), adapter, a per-process cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extraction.errors import ConfigError, ModelNotFoundError
from extraction.models.adapters import attach_adapter
from extraction.models.registry import DEFAULT_MODEL, resolve_model_dir

PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")


def choose_device(device: str | None = None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("CUDA was requested but no CUDA device is available",
                          hint="use --device cpu")
    return device


@dataclass
class LoadedModel:
    """A ready-to-run decoder and its tokenizer."""

    name: str
    model: object  # transformers PreTrainedModel (or a peft wrapper)
    tokenizer: object
    device: str
    precision: str
    adapter: str | None = None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


_LOADED: dict[tuple, LoadedModel] = {}


def load(name_or_path: str = DEFAULT_MODEL, *, device: str | None = None,
         precision: str = "auto", adapter: str | None = None) -> LoadedModel:
    """Load (once per process) a model ready for inference."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", hint=f"choose one of {PRECISIONS}")
    device = choose_device(device)
    key = (name_or_path, device, precision, adapter)
    if key in _LOADED:
        return _LOADED[key]
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    display, source = resolve_model_dir(name_or_path)
    if precision == "auto":
        precision = "bfloat16" if device.startswith("cuda") else "float32"
    dtype = torch.float32 if precision == "int8" else getattr(torch, precision)
    if precision == "int8" and device != "cpu":
        raise ConfigError("int8 dynamic quantization runs on CPU only", hint="use --device cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load model {name_or_path!r}: {exc}".splitlines()[0],
                                 hint="no hub access here: use a registry name "
                                      "('matextract models list') or a local model folder") from exc
    if adapter:
        model = attach_adapter(model, adapter)
    model.to(device).eval()
    if precision == "int8":
        model = quantize_int8(model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    loaded = LoadedModel(name=display, model=model, tokenizer=tokenizer, device=device,
                         precision=precision, adapter=adapter)
    _LOADED[key] = loaded
    return loaded


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer alone (prompts for another runtime, e.g. llama.cpp in the bench)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_dir(name_or_path)[1])


INT8_SCHEME = "all"  # which Linear layers int8 quantizes; see quantize_int8


def quantize_int8(model: Any, scheme: str | None = None) -> Any:
    """Dynamic int8 (weights int8, activations quantized per call) on the chosen layers.

    Schemes: ``all`` every Linear with per-tensor weight scales (torch's default);
    ``body`` every Linear but the LM head, per-channel scales; ``head`` only the LM head,
    per-channel scales. The LM head is the largest single matrix of a small model (49k x 576
    in SmolLM2) and picks every greedy token.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    scheme = scheme or INT8_SCHEME
    if scheme == "all":
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                      dtype=torch.qint8)
    head = model.get_output_embeddings()
    linear = {name: module for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear)}
    chosen = {"body": [n for n, m in linear.items() if m is not head],
              "head": [n for n, m in linear.items() if m is head]}.get(scheme)
    if chosen is None:
        raise ConfigError(f"unknown int8 scheme {scheme!r}", hint="all | body | head")
    return torch.ao.quantization.quantize_dynamic(
        model, {name: per_channel_dynamic_qconfig for name in chosen}, dtype=torch.qint8)


def unload(loaded: LoadedModel | None = None) -> None:
    """Forget one loaded model (or all) so that its memory can be freed."""
    for key in [k for k, v in _LOADED.items() if loaded is None or v is loaded]:
        del _LOADED[key]


