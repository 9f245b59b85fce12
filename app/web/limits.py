"""Limits of the web UI and the environment variables ``matextract app`` passes to the page.

One place for both, so that the page, its help texts and the launcher never disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

from extraction.documents.loading import SUPPORTED_SUFFIXES
from extraction.resources import samples_dir

# Per uploaded file. A 20 MB PDF is ~1,000 pages: beyond that the CLI with --out is the tool.
MAX_UPLOAD_MB = 20
MAX_SCHEMA_KB = 256
# One run (JSON/JSONL collections can hold thousands of abstracts; each takes seconds).
MAX_DOCUMENTS = 50
MAX_PASTE_CHARS = 200_000
UPLOAD_TYPES: tuple[str, ...] = SUPPORTED_SUFFIXES  # ".txt", ".md", ".html", ...

ENV_MODEL = "MATEXTRACT_APP_MODEL"  # default model: registry name or model folder
ENV_EVAL_DIR = "MATEXTRACT_APP_EVAL_DIR"  # evaluation results folder for the results page
ENV_CORRECTIONS = "MATEXTRACT_APP_CORRECTIONS"  # default folder for saved corrections
ENV_MAX_UPLOAD_MB = "MATEXTRACT_APP_MAX_UPLOAD_MB"

DEFAULT_EVAL_DIR = "eval-results"
DEFAULT_CORRECTIONS_DIR = "corrections"
SAMPLES_DIR = samples_dir()


def max_upload_mb() -> int:
    try:
        return max(1, int(os.environ.get(ENV_MAX_UPLOAD_MB, MAX_UPLOAD_MB)))
    except ValueError:
        return MAX_UPLOAD_MB


def eval_dir() -> Path:
    return Path(os.environ.get(ENV_EVAL_DIR) or DEFAULT_EVAL_DIR).expanduser()


def corrections_dir() -> Path:
    return Path(os.environ.get(ENV_CORRECTIONS) or DEFAULT_CORRECTIONS_DIR).expanduser()


def limits_text() -> str:
    """What the upload box accepts, and why, in one sentence for the page."""
    kinds = " ".join(UPLOAD_TYPES)
    return (f"Accepted: {kinds}; up to {max_upload_mb()} MB per file and {MAX_DOCUMENTS} "
            f"documents per run (a .json/.jsonl collection counts one per item). Small local "
            f"models read a few pages a minute: for whole collections use "
            f"`matextract extract FILES --out results.jsonl`.")
