#!/usr/bin/env bash
# Build `llama-server` from the llama.cpp sources vendored in llama-cpp-python's sdist.
#
# Why the sdist and not llama.cpp master: the `matextract bench` server rows must run the
# same llama.cpp commit (same kernels) as the single-stream rows, which go through the
# llama-cpp-python binding pinned below. Native CPU flags, no CURL/OpenSSL, no web UI
# (the build would otherwise try to download the UI assets).
#
# Usage: scripts/build_llama_server.sh [EXTRACTED_SDIST_DIR] [BUILD_DIR]
#   EXTRACTED_SDIST_DIR  an already-extracted llama_cpp_python-<version> tree (optional;
#                        downloaded and extracted under .cache/llama.cpp/ when omitted)
#   BUILD_DIR            cmake build folder (default .cache/llama.cpp/build)
# Env: LLAMA_CPP_PYTHON_VERSION (default 0.3.36), JOBS (default 2).
# Prints the path of the built binary on the last line of stdout.
set -euo pipefail

version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
jobs="${JOBS:-2}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${repo_root}/.cache/llama.cpp"
src="${1:-}"
build="${2:-${cache}/build}"

if [[ -z "${src}" ]]; then
    src="${cache}/src/llama_cpp_python-${version}"
    if [[ ! -d "${src}/vendor/llama.cpp" ]]; then
        mkdir -p "${cache}/src"
        python="${repo_root}/.venv/bin/python"
        [[ -x "${python}" ]] || python="python3"
        "${python}" -m pip download --no-deps --no-binary :all: \
            "llama-cpp-python==${version}" -d "${cache}/src" >&2
        tar -xzf "${cache}/src/llama_cpp_python-${version}.tar.gz" -C "${cache}/src"
    fi
fi
if [[ ! -f "${src}/vendor/llama.cpp/CMakeLists.txt" ]]; then
    echo "error: ${src}/vendor/llama.cpp/CMakeLists.txt not found;" \
         "pass an extracted llama_cpp_python sdist folder" >&2
    exit 2
fi

cmake -S "${src}/vendor/llama.cpp" -B "${build}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF >&2
cmake --build "${build}" --target llama-server -j "${jobs}" >&2

binary="${build}/bin/llama-server"
[[ -x "${binary}" ]] || { echo "error: build finished but ${binary} is missing" >&2; exit 1; }
echo "${binary}"
