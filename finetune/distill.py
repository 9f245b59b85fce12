"""Distillation data: a tuned teacher labels materials text nobody annotated for a schema, and
the labels that pass our checks become silver training texts for a smaller student
(``matextract distill``, then ``matextract finetune --silver FILE``).

A label is kept only when it passes what a reviewer would check without the gold: the
answer parses and validates against the schema, every value is found in the text
(grounding), the Reflexion evaluator raises no signal on it (a material as its own dopant,
a field left empty that a cue in the text says is filled, ...), and a record with values
comes from a text that shows one of the schema's cues (for doping: "doped", "dopant",
"doping"; a teacher that finds a "dopant" in a sentence about gas adsorption is wrong). The
others are counted and left out, never trained on.

The pool for ``doping`` is the sentences of the NERRE general and MOF abstracts of a fold's
training split (their validation abstracts stay unseen), which nobody annotated for doping:
every sentence that mentions doping, and a seeded sample of the others for the teacher to
label too (mostly empty records, the negatives a student needs).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from extraction.datasets import nerre as nerre_data
from extraction.checking.grounding import Grounder
from extraction.checking.reflexion import evaluate
from extraction.datasets.annotated import AnnotatedText
from extraction.documents.chunking import sentences
from extraction.errors import ConfigError
from extraction.pipeline import Extractor
from extraction.schemas.base import SchemaSpec, scalar_leaves
from extraction.types import Document, Extraction

POOL_SCHEMAS = ("doping",)
DOPING_CUE = re.compile(r"dop", re.IGNORECASE)  # doped, doping, dopant, co-doping


@dataclass(frozen=True)
class SilverLabel:
    """The teacher's answer for one text and whether it is kept (``reason`` None) or why not."""

    id: str
    text: str
    record: dict[str, Any] | None
    reason: str | None  # None: kept

    def line(self, schema: str, teacher: str) -> dict[str, Any]:
        """The annotated-JSONL line (``extraction.datasets.annotated``) of a kept label."""
        return {"id": self.id, "text": self.text, "gold": self.record, "schema": schema,
                "source": f"silver: labelled by {teacher}"}


def unlabelled_pool(schema: str, *, fold: int = 0, others_per_cue: float = 2.0,
                    seed: int = 0) -> list[AnnotatedText]:
    """Texts to label for ``schema`` (gold left empty): see the module docstring."""
    if schema not in POOL_SCHEMAS:
        raise ConfigError(f"no unlabelled pool for schema {schema!r} yet",
                          hint=f"distillation pools exist for: {', '.join(POOL_SCHEMAS)}")
    scored = {s.text.strip() for s in nerre_data.load_doping_sentences("test",
                                                                        relevant_only=False)}
    # a training abstract may repeat a sentence of a validation one: left out as well
    unseen = "\n".join(row.abstract for kind in ("general", "mof")
                       for row in nerre_data.load_entry_fold(kind, fold, split="val"))
    cued, others = [], []
    for kind in ("general", "mof"):
        for number, row in enumerate(nerre_data.load_entry_fold(kind, fold, split="train")):
            for index, (start, end) in enumerate(sentences(row.abstract)):
                text = row.abstract[start:end].strip()
                if len(text) < 20 or text in scored or text in unseen:
                    continue
                item = AnnotatedText(f"{kind}:{fold}:train:{number}#{index}", text, {})
                (cued if DOPING_CUE.search(text) else others).append(item)
    sampled = random.Random(seed).sample(others, min(len(others),
                                                     int(round(others_per_cue * len(cued)))))
    return cued + sampled


def check(extraction: Extraction, text_id: str, text: str) -> SilverLabel:
    """Keep the teacher's record only when it is valid and every value is in the text."""
    attempts = [attempt for unit in extraction.trace for attempt in unit["attempts"]]
    if extraction.errors or not attempts or attempts[-1]["errors"]:
        problems = extraction.errors or (attempts[-1]["errors"] if attempts else ["no answer"])
        return SilverLabel(text_id, text, None, f"invalid answer: {problems[0]}")
    if len(extraction.records) != 1:
        return SilverLabel(text_id, text, None, f"{len(extraction.records)} records")
    ungrounded = [e.value for e in extraction.evidence if not e.grounded]
    if ungrounded:
        return SilverLabel(text_id, text, None, f"value not in the text: {ungrounded[0]!r}")
    return SilverLabel(text_id, text, extraction.records[0], None)


def review(spec: SchemaSpec, item: SilverLabel) -> SilverLabel:
    """``item`` with a reason when the evaluator's signals or the schema's cues reject it
    (pure: labels made earlier are reviewed the same way)."""
    if item.reason is not None or item.record is None:
        return item
    _, signals = evaluate(spec, json.dumps(item.record), item.text,
                          Grounder(Document.from_text(item.text)))
    flagged = [line for kind in ("errors", "inconsistent", "missing") for line in signals[kind]]
    flagged += [f"{line} is not in the text" for line in signals["ungrounded"]]
    if flagged:
        return dataclasses.replace(item, record=None, reason=f"evaluator signal: {flagged[0]}")
    cues = [re.compile(pattern) for pattern in spec.extra.get("cues", {}).values()]
    if cues and any(scalar_leaves(item.record)) and not any(c.search(item.text) for c in cues):
        return dataclasses.replace(item, record=None,
                                   reason="no cue: values in a text that shows none of "
                                          "the schema's cues")
    return item


def label(extractor: Extractor, texts: Sequence[AnnotatedText]) -> Iterator[SilverLabel]:
    """The teacher's label of each text, in order, checked for validity and grounding (decoded
    in the extractor's batches; ``review`` applies the remaining checks)."""
    documents = [Document.from_text(item.text, source=item.id) for item in texts]
    for item, extraction in zip(texts, extractor.extract_many(documents), strict=True):
        yield check(extraction, item.id, item.text)


def tally(labels: Iterable[SilverLabel]) -> Counter:
    """How many labels were kept (with and without values) and left out, by reason kind."""
    counts: Counter = Counter()
    for item in labels:
        if item.reason is not None:
            counts[f"left out: {item.reason.split(':')[0]}"] += 1
        elif any(scalar_leaves(item.record)):
            counts["kept, with values"] += 1
        else:
            counts["kept, empty"] += 1
    return counts
