"""GGUF files of loaded models, for the llama.cpp backend: written once with llama.cpp's own
converter and cached under the matextract home, keyed by what went into them.

The converter (``convert_hf_to_gguf.py`` with its ``conversion`` and ``gguf-py`` folders)
ships with the llama.cpp sources, not with the Python binding; ``scripts/setup.sh`` copies it
from the llama-cpp-python sdist it builds into the environment, ``<venv>/share/matextract/
llama.cpp/``, so binding and converter come from the same llama.cpp.
``$MATEXTRACT_GGUF_CONVERTER`` points elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from extraction.errors import ConfigError
from extraction.settings import home_dir

CONVERTED_TYPES = ("f32", "f16", "bf16", "q8_0")  # what llama.cpp's converter writes
# Types llama.cpp's quantizer makes from the f32 GGUF, by its ftype number (llama.h):
# Q4_K_M keeps the sensitive tensors (half the attention values and FFN down projections)
# at 6 bits, the rest at 4 bits in blocks of 256 with 6-bit scales.
QUANTIZED_TYPES = {"q4_k_m": 15}
GGUF_TYPES = (*CONVERTED_TYPES, *QUANTIZED_TYPES)
# What each of our precisions becomes in llama.cpp: weight-only int8 (Q8_0, per-32 scales)
# for "auto" and "int8", int4 as Q4_K_M, the float types as they are.
GGUF_TYPE_OF_PRECISION = {"auto": "q8_0", "int8": "q8_0", "int4": "q4_k_m", "float32": "f32",
                          "float16": "f16", "bfloat16": "bf16"}
CONVERTER_ENV = "MATEXTRACT_GGUF_CONVERTER"
CONVERTER_DIR = Path(sys.prefix) / "share" / "matextract" / "llama.cpp"


def converter_path() -> Path | None:
    """llama.cpp's ``convert_hf_to_gguf.py``, or None when it is not installed."""
    configured = os.environ.get(CONVERTER_ENV)
    path = Path(configured) if configured else CONVERTER_DIR / "convert_hf_to_gguf.py"
    return path if path.is_file() else None


def gguf_key(source: str, adapter: str | None, outtype: str) -> str:
    """Names a GGUF by the weights and adapter it holds: a changed adapter gets a new file."""
    digest = hashlib.sha256()
    for folder in (Path(source), Path(adapter) if adapter else None):
        if folder is None:
            continue
        # configs and every weight file (sharded models too); size + mtime, since hashing
        # 500 MB at every load is too slow
        for path in sorted([*folder.glob("*config.json"), *folder.glob("*.safetensors")]):
            stat = path.stat()
            digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{Path(source).name}-{digest.hexdigest()[:16]}.{outtype}"


def cached_gguf(model: Any, tokenizer: Any, *, source: str, adapter: str | None,
                outtype: str) -> Path:
    """The GGUF of ``model`` (adapter already merged) in ``outtype``, written on first use."""
    if outtype not in GGUF_TYPES:
        raise ConfigError(f"unknown GGUF type {outtype!r}", hint=f"choose one of {GGUF_TYPES}")
    target = home_dir() / "gguf" / f"{gguf_key(source, adapter, outtype)}.gguf"
    failed = target.with_name(target.name + ".failed")  # the converter's reason, kept
    if target.is_file():
        return target
    if failed.is_file():
        raise ConfigError(failed.read_text().strip(),
                          hint=f"delete {failed} to try the conversion again")
    converter = converter_path()
    if converter is None:
        raise ConfigError("llama.cpp's GGUF converter is not installed",
                          hint="run scripts/setup.sh (it installs it with llama-cpp-python), "
                               f"or set {CONVERTER_ENV} to a convert_hf_to_gguf.py")
    try:
        if outtype in QUANTIZED_TYPES:
            full = cached_gguf(model, tokenizer, source=source, adapter=adapter, outtype="f32")
            quantize_gguf(full, target, outtype)
        else:
            write_gguf(model, tokenizer, target, converter=converter, outtype=outtype)
    except ConfigError as exc:
        failed.write_text(exc.message)
        raise
    return target


def write_gguf(model: Any, tokenizer: Any, out: Path, *, converter: Path,
               outtype: str) -> Path:
    """Save ``model`` and convert it; ``out`` appears only when the conversion succeeded."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with tempfile.TemporaryDirectory(prefix="matextract-gguf-") as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _drop_quantization_config(Path(folder) / "config.json")
        converted = subprocess.run(
            [sys.executable, str(converter), folder, "--outtype", outtype,
             "--outfile", str(partial)], capture_output=True, text=True)
    if converted.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = "\n".join(converted.stderr.strip().splitlines()[-3:])
        raise ConfigError(f"llama.cpp's converter failed (exit {converted.returncode}) "
                          f"writing {out}: {tail}",
                          hint="llama.cpp's converter does not support this model (its "
                               "architecture or its tokenizer); use --backend transformers")
    partial.replace(out)
    return out


def quantize_gguf(source: Path, out: Path, outtype: str) -> Path:
    """``source`` (an f32 GGUF) quantized by llama.cpp into ``outtype``; ``out`` appears only
    when the quantizer succeeded."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTIZED_TYPES[outtype]
    params.nthread = os.cpu_count() or 1
    partial = out.with_name(f".{out.name}.partial")
    failed = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if failed:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"llama.cpp's quantizer failed (code {failed}) writing {out} "
                          f"from {source}", hint="use --precision int8 or float32")
    partial.replace(out)
    return out


def _drop_quantization_config(config_file: Path) -> None:
    """A model prepared from a GGUF may still name its old quantization; the converter would
    then refuse the (already dequantized) weights."""
    config = json.loads(config_file.read_text())
    if config.pop("quantization_config", None) is not None:
        config_file.write_text(json.dumps(config, indent=2))
