"""The ``Extractor``: composes the pipeline steps; holds no extraction logic of its own.

document -> (retrieval windows) -> prompt -> constrained decode -> validate -> reflexion
-> evidence spans -> ``Extraction`` (the output record of one document).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from extraction import prompting
from extraction.checking import reflexion
from extraction.checking.grounding import Grounder, drop_ungrounded
from extraction.checking.validation import validate
from extraction.config import ExtractorConfig
from extraction.confidence.calibration import RAW
from extraction.confidence.store import find_calibration
from extraction.confidence.tokens import token_ends, value_scores
from extraction.confidence.values import unit_answers, with_confidence
from extraction.decoding import generation
from extraction.documents.units import split_units
from extraction.merging import merge_records
from extraction.models import LoadedModel, adapter_card, inference_setting, load
from extraction.retrieval import windows as retrieval
from extraction.schemas import SchemaSpec, get_schema
from extraction.schemas.base import Example
from extraction.schemas.bounds import Bounds, widened
from extraction.schemas.fewshot_choice import DEFAULT_COUNT, choose_examples, read_examples_file
from extraction.types import Document, Extraction

def prompt_examples(config: ExtractorConfig, examples: Sequence[Example]) -> tuple[Example, ...]:
    """The few-shot examples the prompt shows under ``config``.

    An adapter is used with the prompt it was trained on (often zero-shot), unless
    ``config.few_shot`` says otherwise. Examples from a file (``config.examples``) are
    candidates, chosen by ``choose_examples``: a file may hold hundreds of texts.
    """
    few_shot = config.few_shot
    if few_shot is None and config.adapter:
        few_shot = inference_setting(adapter_card(config.adapter), "few_shot",
                                     config.schema_name)
    if config.examples:
        return choose_examples(examples, count=DEFAULT_COUNT if few_shot is None else few_shot)
    return tuple(examples if few_shot is None else examples[:few_shot])


def adapted_schema(config: ExtractorConfig) -> SchemaSpec:
    """The run's schema, with the string and list bounds its adapter learnt in training
    widened, so that the grammar can write what the adapter was taught."""
    spec = get_schema(config.schema_name)
    if not config.adapter:
        return spec
    learnt = inference_setting(adapter_card(config.adapter), "bounds", config.schema_name)
    return widened(spec, Bounds.from_dict(learnt))


class Extractor:
    """One configured pipeline; load once, extract from many documents."""

    def __init__(self, config: ExtractorConfig | None = None, *,
                 loaded: LoadedModel | None = None,
                 examples: Sequence[Example] | None = None) -> None:
        """``loaded`` reuses a model already in memory; ``examples`` replaces the schema's
        built-in few-shot examples and ``config.examples``'s file (evaluation draws them from
        each fold's training split, or from that file less the scored texts)."""
        self.config = config or ExtractorConfig()
        self.spec: SchemaSpec = adapted_schema(self.config)
        if examples is None:  # a bad examples file fails before the model loads
            examples = (read_examples_file(Path(self.config.examples),
                                           schema=self.config.schema_name)
                        if self.config.examples else self.spec.examples)
        started = time.perf_counter()
        self.loaded = loaded or load(self.config.model, device=self.config.device,
                                     precision=self.config.precision, adapter=self.config.adapter,
                                     backend=self.config.backend)
        self.load_seconds = time.perf_counter() - started
        self.constraint = (generation.JsonConstraint(self.loaded, self.spec.json_schema())
                           if self.config.constrained else None)
        self.examples = prompt_examples(self.config, examples)
        self.calibration = find_calibration(self.loaded.adapter, self.loaded.name,
                                            self.spec.name)
        self._embedder = None
        self._index = None
        self._prefix: generation.PrefixCache | None = None

    # -- public ------------------------------------------------------------------------------

    def extract(self, document: Document) -> Extraction:
        return self.extract_group([document])[0]

    def extract_many(self, documents: Iterable[Document]) -> Iterator[Extraction]:
        """Extract in groups of ``config.batch_size`` documents, yielding in input order."""
        group: list[Document] = []
        for document in documents:
            group.append(document)
            if len(group) == self.config.batch_size:
                yield from self.extract_group(group)
                group = []
        if group:
            yield from self.extract_group(group)

    def extract_group(self, documents: Sequence[Document]) -> list[Extraction]:
        """Extract several documents. Each is cut into units (windows of the configured
        unit, within what retrieval chose for a long document); Reflexion runs over all
        units of all documents in rounds: the first answers, then the reflections and
        retries of those that need one, each decoded ``batch_size`` at a time. A document's
        unit records are merged into one."""
        started = time.perf_counter()
        results, plans = [], []
        for document in documents:
            window_started = time.perf_counter()
            windows = split_units(self._windows(document), self.config.unit)
            results.append(Extraction(
                source=document.source, sha256=document.sha256,
                schema={"name": self.spec.name, "version": self.spec.version},
                model={"name": self.loaded.name, "adapter": self.loaded.adapter,
                       "precision": self.loaded.precision, "backend": self.loaded.backend,
                       "device": self.loaded.device,
                       "calibration": self.calibration.fitted_on if self.calibration
                       else RAW},
                timings={"retrieval_s": round(time.perf_counter() - window_started, 4)}))
            plans.append(windows)
        grounders = [Grounder(document) for document in documents]
        trials = [[reflexion.Trial(window.text, grounder) for window in windows]
                  for windows, grounder in zip(plans, grounders)]
        every = [trial for group in trials for trial in group]
        reflexion.run_many(
            self.spec, every, generate=self._attempts, max_attempts=self.config.max_attempts,
            firsts=self._first_attempts([trial.text for trial in every]),
            reflect=self._reflections if self.config.reflect_with_model else None,
            critique=self._critiques if self.config.self_critique else None)
        for document, windows, group, grounder, result in zip(documents, plans, trials,
                                                              grounders, results):
            self._finish(document, windows, group, grounder, result)
            result.timings["total_s"] = round(time.perf_counter() - started, 4)
        return results

    def _finish(self, document: Document, windows: list[retrieval.Window],
                trials: list[reflexion.Trial], grounder: Grounder, result: Extraction) -> None:
        """The record (best attempt per unit, merged), grounding and evidence."""
        records = []
        for window, trial in zip(windows, trials):
            best = trial.best()
            result.trace.append({"window": {"start": window.start, "end": window.end},
                                 "best_attempt": best.number,
                                 "attempts": [a.to_dict() for a in trial.attempts]})
            record = best.record
            if record is None:
                result.errors.append(f"window {window.start}-{window.end}: no valid answer after "
                                     f"{len(trial.attempts)} attempt(s): "
                                     f"{'; '.join(best.errors)}")
                continue
            if self.config.strict_grounding:
                record = self._strict(record, grounder, result)
            records.append(record)
        result.records = [merge_records(records)] if len(records) > 1 else records
        self._attach_evidence(document, grounder, result)
        result.evidence = with_confidence(result.evidence, unit_answers(trials),
                                          self.calibration)
        result.timings["generation_s"] = round(sum(
            a["generation"].get("seconds", 0.0) for t in result.trace for a in t["attempts"]), 4)

    # -- steps -------------------------------------------------------------------------------

    def _windows(self, document: Document) -> list[retrieval.Window]:
        long_document = len(document.text) > self.config.short_document_chars
        use = self.config.retrieval == "on" or (self.config.retrieval == "auto" and long_document)
        if not use:
            return [retrieval.Window(0, len(document.text), document.text, 1.0)]
        index = self.index
        size_before = len(index) if index is not None else 0
        windows = retrieval.select(document, self.spec, embedder=self.embedder, index=index,
                                   chunk_size=self.config.chunk_size,
                                   chunk_overlap=self.config.chunk_overlap, top_k=self.config.top_k)
        if index is not None and len(index) != size_before:
            index.save(self.config.index_dir)  # a new document was indexed: keep it
        return windows

    def _first_attempts(self, texts: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """First answers (no feedback) for many texts."""
        return self._attempts([(text, []) for text in texts])

    def _attempts(self, items: Sequence[tuple[str, Sequence[str]]]
                  ) -> list[tuple[str, dict[str, Any]]]:
        """Answers for (text, feedback lines) pairs, decoded ``batch_size`` at a time."""
        answers = []
        for batch in _batches(items, self.config.batch_size):
            messages = [prompting.build_messages(self.spec, text, examples=self.examples,
                                                 feedback=feedback)
                        for text, feedback in batch]
            answers += self._decode(messages, [bool(feedback) for _, feedback in batch],
                                    [text for text, _ in batch])
        return answers

    def _decode(self, conversations: list[list[dict[str, str]]], with_feedback: Sequence[bool],
                sources: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """Answers (constrained unless configured off; extractive fields copied from each
        conversation's source text) for conversations decoded as one batch, with each
        one's decode figures.

        In a batch, ``seconds`` is the row's share of the batch's time."""
        prompts = [prompting.render(self.loaded.tokenizer, m) for m in conversations]
        outs = generation.generate_many(self.loaded, prompts, constraint=self.constraint,
                                        max_new_tokens=self.config.max_new_tokens,
                                        prefix=self.prefix_cache,
                                        fast_forward=self.config.fast_forward,
                                        packed=self.config.packed_batches,
                                        sources=sources if self.constraint is not None
                                        and self.config.extractive else None)
        return [(out.text, {"prompt_tokens": out.prompt_tokens,
                            "new_tokens": len(out.token_ids),
                            "forward_passes": out.forward_passes,
                            "forced_tokens": out.forced_tokens,
                            "grammar_seconds": round(out.grammar_seconds, 4),
                            "reused_prefix_tokens": out.reused_prefix_tokens,
                            "seconds": round(out.total_seconds / len(outs), 4),
                            "batch_rows": len(outs),
                            "finish_reason": out.finish_reason,
                            "extractive_relaxed": out.extractive_relaxed,
                            "value_scores": self._value_scores(out),
                            "feedback_in_prompt": messages[-1]["content"] if feedback
                            else None})
                for out, messages, feedback in zip(outs, conversations, with_feedback)]

    def _value_scores(self, out: generation.Generation) -> dict[str, dict[str, float]]:
        """Path -> log-probabilities of each string value's own tokens in this answer."""
        ends = token_ends(self.loaded.tokenizer, out.token_ids)
        return {path: score.to_dict()
                for path, score in value_scores(out.text, ends, out.token_logprobs).items()}

    def _reflections(self, items: Sequence[tuple[str, reflexion.Attempt]]) -> list[str]:
        """What the model writes about each failed attempt (one line), decoded in batches."""
        written = []
        for batch in _batches(items, self.config.batch_size):
            prompts = [prompting.render(self.loaded.tokenizer, prompting.reflection_messages(
                text, attempt.raw, attempt.signals)) for text, attempt in batch]
            outs = generation.generate_many(self.loaded, prompts, max_new_tokens=48,
                                            stop_at_json_end=False,
                                            packed=self.config.packed_batches)
            written += [_reflection_line(out.text, attempt)
                        for out, (_, attempt) in zip(outs, batch)]
        return written

    def _critiques(self, items: Sequence[tuple[str, str]]) -> list[str]:
        """The model's yes/no verdict on each answer (one forward pass each)."""
        return [generation.choose(self.loaded, prompting.render(
            self.loaded.tokenizer, prompting.critique_messages(text, raw)), ["yes", "no"])
            for text, raw in items]

    def _strict(self, record: dict[str, Any], grounder: Grounder,
                result: Extraction) -> dict[str, Any]:
        cleaned = drop_ungrounded(record, grounder)
        checked = validate(self.spec, prompting.compact_json(cleaned))
        if checked.valid:
            return checked.record  # type: ignore[return-value]
        result.errors.append("strict grounding left an invalid record; reported it empty: "
                             + "; ".join(checked.errors))
        return dict(self.spec.empty_output())

    def _attach_evidence(self, document: Document, grounder: Grounder,
                         result: Extraction) -> None:
        for position, record in enumerate(result.records):
            result.evidence += grounder.evidence(record, position)

    # -- lazily built parts -------------------------------------------------------------------

    @property
    def prefix_cache(self) -> generation.PrefixCache | None:
        if self.config.reuse_prefix and self._prefix is None:
            self._prefix = generation.PrefixCache(self.loaded, prompting.fixed_prefix(
                self.loaded.tokenizer, self.spec, examples=self.examples))
        return self._prefix

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from extraction.retrieval.embeddings import Embedder
            self._embedder = Embedder(self.config.embedding_model)
        return self._embedder

    @property
    def index(self) -> Any:
        if self._index is None and self.config.index_dir:
            from extraction.retrieval.index import HnswIndex
            folder = Path(self.config.index_dir)
            self._index = HnswIndex.load(folder)
            self._index.ensure_compatible(self.embedder.name, self.embedder.dim)
        return self._index


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for offset in range(0, len(items), size):
        yield items[offset:offset + size]


def _reflection_line(text: str, attempt: reflexion.Attempt) -> str:
    """The first line the model wrote, or, if it wrote nothing usable, the first problem."""
    line = text.strip().splitlines()[0][:300] if text.strip() else ""
    return line if line.strip(" .-") else reflexion.fallback_reflection(attempt)
