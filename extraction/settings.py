"""Where matextract keeps its caches, process-wide offline settings, and the defaults the
command line shares with ``ExtractorConfig`` (this module imports nothing heavy)."""

from __future__ import annotations

import os
from pathlib import Path

# Texts decoded together. Packed batches keep gaining up to 64 rows on 2 CPU cores
# (BENCHMARKS.md); 32 keeps a crash's loss (the group in flight) small.
DEFAULT_BATCH_SIZE = 32
# Tokens llama.cpp computes in one pass (its n_ubatch). A step's tokens are split evenly
# across its sequences, so llama.cpp's 512 would cut a 64-row prompt step into many passes.
LLAMACPP_UBATCH = 2048


def home_dir() -> Path:
    """Cache root: ``$MATEXTRACT_HOME`` or ``~/.cache/matextract``."""
    root = os.environ.get("MATEXTRACT_HOME") or Path.home() / ".cache" / "matextract"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def force_offline() -> None:
    """Nothing may be fetched from a model hub at run time; fail fast instead of hanging."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_libraries() -> None:
    """No progress bars or advice from transformers: our own output is the interface."""
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    # peft 0.21 asks transformers 5 a deprecated question on every adapter load.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                            category=FutureWarning)
    for noisy in ("sentence_transformers", "pypdf"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
