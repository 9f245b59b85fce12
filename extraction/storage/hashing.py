"""One content hash for configurations and identities (resume fingerprints, eval run ids,
training checkpoints): sha256 of canonical JSON, cut to ``length`` hex digits."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(value: Any, *, length: int = 16) -> str:
    """The same value always gives the same hash, whatever the key order; values JSON cannot
    hold (paths, tuples' types) hash by their ``str``."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
