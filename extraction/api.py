"""The one-call API for scripts: ``extract("paper.pdf", schema="doping")``.

For many documents, or several calls with the same settings, build an ``Extractor`` once
(the model stays loaded) and call ``extract_many``; this function does exactly that for the
documents it is given.
"""

from __future__ import annotations

import os
from typing import Any

from extraction.config import ExtractorConfig
from extraction.documents.loading import load
from extraction.pipeline import Extractor
from extraction.types import Document, Extraction


def extract(*sources: str | os.PathLike[str] | Document, schema: str = "doping",
            config: ExtractorConfig | None = None, **options: Any) -> list[Extraction]:
    """Records with evidence for every document in ``sources``, in order.

    A source is a file (.txt .md .html .pdf, or .json/.jsonl holding many abstracts: one
    Extraction each) or a ``Document`` (``Document.from_text(text)`` for text in memory).
    ``options`` are ExtractorConfig fields (``model=``, ``adapter=``, ``max_attempts=`` ...);
    pass ``config`` instead to reuse one. Bad files raise ``DocumentError`` before any model
    work, bad options ``pydantic.ValidationError`` naming the field.
    """
    if config is not None and options:
        raise TypeError("pass either config or options, not both")
    documents: list[Document] = []
    for source in sources:
        documents.extend([source] if isinstance(source, Document) else load(source))
    extractor = Extractor(config or ExtractorConfig(schema_name=schema, **options))
    return list(extractor.extract_many(documents))
