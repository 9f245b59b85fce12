"""Loading a model for inference: device, precision (incl. int8), adapter, a per-process cache."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from extraction.errors import ConfigError, ModelNotFoundError
from extraction.models.adapters import attach_adapter, resolve_adapter
from extraction.models.gguf import GGUF_TYPE_OF_PRECISION, cached_gguf
from extraction.models.registry import DEFAULT_MODEL, resolve_model_dir

PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8", "int4")
# Who computes the logits: llama.cpp (CPU, GGUF of the merged model) or transformers (any
# device; training). "auto": llama.cpp on CPU when it is installed.
BACKENDS = ("auto", "llamacpp", "transformers")
_NOTICES: set[str] = set()


def _print_notice(text: str) -> None:
    print(text, file=sys.stderr)


_notice_sink: Callable[[str], None] = _print_notice


@contextmanager
def notices_to(sink: Callable[[str], None]) -> Iterator[None]:
    """Send the loader's one-time notices (a backend falling back, say) to ``sink`` instead of
    printing them: a ``--log-json`` run keeps every stderr line JSON."""
    global _notice_sink
    previous, _notice_sink = _notice_sink, sink
    try:
        yield
    finally:
        _notice_sink = previous


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
    backend: str = "transformers"
    engine: Any = None  # a LlamaCppEngine when backend == "llamacpp"

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


_LOADED: dict[tuple, LoadedModel] = {}


def resolve_backend(backend: str, device: str | None) -> str:
    """The concrete backend for ``backend`` on ``device``; 'auto' falls back to transformers
    with a one-line notice when llama.cpp is not installed."""
    from extraction.models import llamacpp
    from extraction.models.gguf import converter_path

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", hint=f"choose one of {BACKENDS}")
    on_cpu = choose_device(device) == "cpu"
    if backend == "transformers" or (backend == "auto" and not on_cpu):
        return "transformers"
    missing = ("llama-cpp-python" if not llamacpp.available() else
               "llama.cpp's GGUF converter" if converter_path() is None else None)
    if backend == "llamacpp":
        if not on_cpu:
            raise ConfigError("the llama.cpp backend runs on CPU here",
                              hint="use --backend transformers on a GPU")
        if missing:
            raise ConfigError(f"the llama.cpp backend needs {missing}",
                              hint="run scripts/setup.sh, or use --backend transformers")
        return "llamacpp"
    if missing:
        _notice(f"note: llama.cpp backend unavailable ({missing} not installed: "
                "scripts/setup.sh installs it); decoding with transformers")
        return "transformers"
    return "llamacpp"


def _llamacpp_engine(model: Any, tokenizer: Any, *, source: str, outtype: str,
                     adapter: str | None, requested: str) -> Any:
    """The model's llama.cpp engine; None (after a notice) when the converter cannot write
    this model and the backend was only 'auto'."""
    from extraction.models.llamacpp import LlamaCppEngine

    try:
        gguf = cached_gguf(model, tokenizer, source=source, outtype=outtype,
                           adapter=str(resolve_adapter(adapter)) if adapter else None)
    except ConfigError as exc:
        if requested != "auto":
            raise
        _notice(f"note: llama.cpp cannot run this model ({exc.message}); decoding with "
                "transformers")
        return None
    # float32 means float32 throughout: f32 keys/values and plain attention (llama.cpp's
    # fused kernel rounds through f16), so answers track transformers' (tests compare them).
    full = outtype == "f32"
    return LlamaCppEngine(gguf, full_precision_cache=full, flash_attention=not full)


def _llamacpp_runs(source: str) -> bool:
    """Whether 'auto' sends this model to llama.cpp: an architecture it converts and runs
    (read from the config alone, before any weights load); a notice when not."""
    from transformers import AutoConfig

    from extraction.models.llamacpp import ARCHITECTURES

    model_type = AutoConfig.from_pretrained(source).model_type
    if model_type not in ARCHITECTURES:
        _notice(f"note: llama.cpp does not run {model_type!r} models here; decoding with "
                "transformers")
    return model_type in ARCHITECTURES


def _notice(text: str) -> None:
    if text not in _NOTICES:
        _NOTICES.add(text)
        _notice_sink(text)


def load(name_or_path: str = DEFAULT_MODEL, *, device: str | None = None,
         precision: str = "auto", adapter: str | None = None,
         backend: str = "transformers") -> LoadedModel:
    """Load (once per process) a model ready for inference.

    ``backend="llamacpp"``: the transformers model is loaded as well, converted once into a
    GGUF of ``precision`` (auto/int8: Q8_0, int4: Q4_K_M) that a ``LlamaCppEngine`` runs,
    and its weights are then dropped (moved to the meta device): only its config stays.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", hint=f"choose one of {PRECISIONS}")
    device = choose_device(device)
    requested, backend = backend, resolve_backend(backend, device)
    key = (name_or_path, device, precision, adapter, backend)
    if key in _LOADED:
        return _LOADED[key]
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    display, source = resolve_model_dir(name_or_path)
    if backend == "llamacpp" and requested == "auto" and not _llamacpp_runs(source):
        return load(name_or_path, device=device, precision=precision, adapter=adapter,
                    backend="transformers")
    gguf_type = GGUF_TYPE_OF_PRECISION[precision] if backend == "llamacpp" else None
    requested_precision = precision
    if gguf_type:  # llama.cpp quantizes; the transformers side stays float32
        precision = "float32"
    elif precision == "auto":
        precision = "bfloat16" if device.startswith("cuda") else "float32"
    dtype = torch.float32 if precision == "int8" else getattr(torch, precision)
    if precision == "int4":
        raise ConfigError("int4 runs on the llama.cpp backend only (Q4_K_M weights): no "
                          "maintained torch kernel does int4 weights with float32 "
                          "activations on CPU (BENCHMARKS.md, 'Weight-only quantization')",
                          hint="use --backend llamacpp (or auto on CPU), or --precision int8")
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
    engine = None
    if gguf_type:
        engine = _llamacpp_engine(model, tokenizer, source=source, outtype=gguf_type,
                                  adapter=adapter, requested=requested)
        if engine is None:  # 'auto' and the conversion failed: the precision asked for
            return load(name_or_path, device=device, precision=requested_precision,
                        adapter=adapter, backend="transformers")
        precision = gguf_type
        # llama.cpp holds the weights now; the transformers model is kept for its config,
        # vocabulary size and generation settings only (without this, a llama.cpp process
        # held both copies: float32 next to Q8_0).
        model.to("meta")
    loaded = LoadedModel(name=display, model=model, tokenizer=tokenizer, device=device,
                         precision=precision, adapter=adapter, backend=backend, engine=engine)
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


