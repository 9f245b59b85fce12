"""matextract: evidence-linked structured extraction from materials-science papers.

The public API (imported lazily: ``import extraction.errors`` stays light)::

    from extraction import extract, Extractor, ExtractorConfig
    result = extract("paper.pdf", schema="doping")[0]
    for item in result.evidence:            # every string value, typed
        print(item.where, item.value, [(s.start, s.end, s.page) for s in item.spans])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_PUBLIC = {
    "extract": "extraction.api",
    "Extractor": "extraction.pipeline",
    "ExtractorConfig": "extraction.config",
    "Extraction": "extraction.types",
    "Evidence": "extraction.types",
    "FieldPath": "extraction.types",
    "Span": "extraction.types",
    "Document": "extraction.types",
    "MatextractError": "extraction.errors",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from extraction.api import extract
    from extraction.config import ExtractorConfig
    from extraction.errors import MatextractError
    from extraction.pipeline import Extractor
    from extraction.types import Document, Evidence, Extraction, FieldPath, Span


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'extraction' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
