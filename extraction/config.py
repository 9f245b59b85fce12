"""``ExtractorConfig``: every option of one extraction run, declared once.

Each field carries its help text and, in its ``option`` metadata, the name it has on the
command line and whether it changes the records (``affects_output``) or only how fast they
come. The ``extract``/``batch`` options, the web sidebar's defaults, ``--set KEY=VALUE`` and
the batch resume fingerprint are all derived from these fields.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from extraction.documents.units import UNITS
from extraction.models import (AUTO_ADAPTER, BACKENDS, DEFAULT_MODEL, adapter_card,
                               adapter_choice, default_adapter, inference_setting)
from extraction.settings import DEFAULT_BATCH_SIZE

AUTO_ATTEMPTS = 0  # max_attempts left to the adapter's card
DEFAULT_ATTEMPTS = 2  # ... when the card does not say (or there is no adapter)

# Option groups, shown as panels in ``--help``.
PIPELINE = "Pipeline"
RETRIEVAL = "Retrieval"
SPEED = "Speed (records unchanged)"


def option(default: Any, help: str, *, cli: str | None = None, affects_output: bool = True,
           group: str = PIPELINE, **constraints: Any) -> Any:
    """A config field with its help, command-line name (default: the field's name with
    dashes) and whether a change to it changes the records (the resume fingerprint)."""
    return Field(default, description=help, json_schema_extra={
        "option": {"cli": cli, "affects_output": affects_output, "group": group}},
        **constraints)


def option_meta(model: type[BaseModel], name: str) -> dict[str, Any]:
    """A field's ``option`` metadata: cli name, affects_output, group (defaults filled in)."""
    extra = model.model_fields[name].json_schema_extra
    meta = dict(extra.get("option", {})) if isinstance(extra, dict) else {}
    return {"cli": meta.get("cli") or name.replace("_", "-"),
            "affects_output": meta.get("affects_output", True),
            "group": meta.get("group", PIPELINE)}


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON where it parses (numbers, true/false, null), else the string;
    ``none`` means null as on the command line."""
    if text.strip().lower() == "none":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class ExtractorConfig(BaseModel):
    """Every option of one extraction run (saved next to its outputs)."""

    model_config = ConfigDict(extra="forbid")

    schema_name: str = option("doping", "doping | general | mof | a JSON Schema file | "
                              "module:Class", cli="schema")
    model: str = option(DEFAULT_MODEL, "registry name ('matextract models list') or a local "
                        "Hugging Face model folder")
    adapter: str | None = option(AUTO_ADAPTER, "LoRA adapter: a folder (peft layout) or a "
                                 "shipped adapter's name; 'none' for the base model; 'auto': "
                                 "the shipped adapter trained for this model and schema, if any")
    precision: str = option("auto", "auto | float32 | bfloat16 | float16 | int8 | int4 "
                            "(with the llama.cpp backend: auto and int8 mean Q8_0 weights, "
                            "int4 Q4_K_M; int4 needs that backend)")
    backend: Literal[BACKENDS] = option(  # type: ignore[valid-type]  # one list: loading.py
        "auto", "who computes the logits: llamacpp (CPU: a GGUF of the model, many sequences "
        "per step) | transformers (any device); auto: llamacpp on CPU when it is installed and "
        "converts the model, else transformers (with a one-line notice)")
    device: str | None = option(None, "cpu | cuda (default: cuda when available)")
    constrained: bool = option(True, "constrain decoding to the schema's JSON")
    extractive: bool = option(True, "fields marked extractive (built-in entity fields; "
                              "x-extractive in a JSON Schema) can only be filled with text "
                              "copied from the unit read (with constrained decoding)")
    max_attempts: int = option(
        AUTO_ATTEMPTS, "Reflexion attempts per context (1 = no retry); 0: the adapter's "
        f"setting (its card: chosen on held-out data), else {DEFAULT_ATTEMPTS}",
        cli="attempts", ge=0, le=5)
    self_critique: bool = option(False, "ask the model a yes/no check of each attempt")
    reflect_with_model: bool = option(True, "the model writes the reflection before a retry")
    few_shot: int | None = option(None, "few-shot examples in the prompt (default: the "
                                  "adapter's training setting, else all)", ge=0)
    examples: str | None = option(None, "few-shot examples from an annotated JSONL file "
                                  "(the eval task format, same schema as the run) instead of "
                                  "the schema's own: the shortest texts with a filled record "
                                  "that together show the most fields; --few-shot of them "
                                  "(default 2)")
    unit: Literal[("auto", *UNITS)] = option(  # type: ignore[valid-type]  # one list: units.py
        "auto", "what the model reads at a time; records of a document's units are merged. "
        "auto: the unit the adapter was trained on (its card), else whole")
    strict_grounding: bool = option(False, "drop values not found in the source")
    max_new_tokens: int = option(384, "token budget per answer", ge=64)
    retrieval: Literal["auto", "on", "off"] = option(
        "auto", "auto | on | off; auto: only for documents longer than "
        "--short-document-chars", group=RETRIEVAL)
    short_document_chars: int = option(3000, "documents up to this length are read whole",
                                       group=RETRIEVAL, ge=100)
    top_k: int = option(4, "chunks retrieved per document", group=RETRIEVAL, ge=1)
    chunk_size: int = option(800, "characters per retrieval chunk", group=RETRIEVAL, ge=100)
    chunk_overlap: int = option(100, "characters shared by neighbouring chunks",
                                group=RETRIEVAL, ge=0)
    embedding_model: str = option("minilm", "minilm | mpnet | a sentence-transformers folder",
                                  group=RETRIEVAL)
    index_dir: str | None = option(None, "persisted HNSW index to read and extend ('matextract "
                                   "index build'); extract finds the nearest one by default",
                                   cli="index", group=RETRIEVAL)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "texts decoded together (answers, Reflexion "
                             "reflections and retries); greedy answers do not change",
                             affects_output=False, group=SPEED, ge=1, le=64)
    reuse_prefix: bool = option(True, "compute the fixed prompt prefix's keys and values once "
                                "and reuse them for every text", affects_output=False,
                                group=SPEED)
    fast_forward: bool = option(True, "append the tokens the schema forces (keys, quotes, "
                                "brackets) without a model step each (transformers backend: "
                                "llama.cpp is faster without)", affects_output=False,
                                group=SPEED)
    packed_batches: bool = option(True, "run a batch as one packed step (no padding, prompt "
                                  "prefix attended once) where the model allows; off: a "
                                  "padded batch", affects_output=False, group=SPEED)

    @field_validator("adapter", mode="before")
    @classmethod
    def _none_means_base_model(cls, value: Any) -> Any:
        return adapter_choice(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _resolve_auto_adapter(self) -> ExtractorConfig:
        """'auto' becomes a concrete adapter (or None), and the unit and attempts left to
        the adapter become its card's, at once, so saved configs, fingerprints and run ids
        name what was really used."""
        if self.adapter == AUTO_ADAPTER:
            self.adapter = default_adapter(self.model, self.schema_name)
        card = adapter_card(self.adapter)
        if self.unit == "auto":
            self.unit = inference_setting(card, "unit", self.schema_name) or "whole"
        if self.max_attempts == AUTO_ATTEMPTS:
            self.max_attempts = (inference_setting(card, "max_attempts", self.schema_name)
                                 or DEFAULT_ATTEMPTS)
        return self

    @classmethod
    def output_fields(cls) -> set[str]:
        """Fields whose value changes the records (not only the speed)."""
        return {name for name in cls.model_fields if option_meta(cls, name)["affects_output"]}
