"""Where the bundled data lives, found through ``importlib.resources`` so that it works from
a clone, an editable install and a wheel alike: the repository's ``data/`` folder is
installed as the package ``matextract_data`` (setup.py maps it)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_PACKAGE = "matextract_data"


def data_dir() -> Path:
    """The bundled data folder (a real folder: the package is installed unzipped)."""
    return Path(str(resources.files(DATA_PACKAGE)))


def shipped_adapters_dir() -> Path:
    """LoRA adapters shipped with matextract, one folder each (peft layout + card)."""
    return data_dir() / "adapters"


def nerre_dir() -> Path:
    """The NERRE benchmark (Dagdelen et al. 2024, MIT): data/nerre/README.md."""
    return data_dir() / "nerre"


def samples_dir() -> Path:
    """Sample documents of the README's main job and the web UI's examples."""
    return data_dir() / "samples"
