"""Where calibrations live: next to an adapter (``matextract-calibration.json``), or shipped
for a base model and schema (``data/calibration/<model>--<schema>.json``)."""

from __future__ import annotations

import re
from pathlib import Path

from extraction.confidence.calibration import CALIBRATION_FILE, Calibration, read_calibration
from extraction.errors import ConfigError
from extraction.models.adapters import resolve_adapter
from extraction.resources import data_dir
from extraction.storage.fileio import write_atomic


def calibration_path(adapter: str | None, model: str, schema: str) -> Path:
    """Where the calibration of this adapter (or base model and schema) is kept."""
    if adapter:
        return resolve_adapter(adapter) / CALIBRATION_FILE
    slug = re.sub(r"[^\w.-]+", "_", f"{Path(model).name}--{Path(schema).stem}")
    return data_dir() / "calibration" / f"{slug}.json"


def find_calibration(adapter: str | None, model: str, schema: str) -> Calibration | None:
    """The stored calibration for this run, or None (confidences are then uncalibrated).

    An adapter's calibration is only used with the schema it was fitted for: the adapter's
    own task (its card), so a calibration is never applied to another schema."""
    path = calibration_path(adapter, model, schema)
    if not path.exists():
        return None
    try:
        found = read_calibration(path)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="delete the file or fit it again with "
                                         "'matextract eval ... --fit-calibration'") from exc
    return found if not found.schema or found.schema == schema else None


def save_calibration(calibration: Calibration, adapter: str | None, model: str,
                     schema: str) -> Path:
    import json

    path = calibration_path(adapter, model, schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(calibration.to_dict(), indent=1) + "\n").encode("utf-8"))
    return path
