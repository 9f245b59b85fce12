"""Greedy decoding with an optional JSON-schema constraint (xgrammar token masks).

We run our own decode loop instead of ``model.generate`` so that we control the budget: when
few tokens are left, decoding switches to "closing mode" and prefers the tokens that end
strings, arrays and objects, so a constrained output always finishes as valid JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from extraction.decoding import packed as packing
from extraction.decoding.batched import BatchDecoder
from extraction.decoding.extractive import CopyPlan
from extraction.decoding.token_index import token_index
from extraction.errors import GenerationError
from extraction.models import LoadedModel
from extraction.schemas.base import ExtractiveField, extractive_fields, skeleton

# Tokens kept at the end of the budget, beyond what the schema's skeleton needs, for closing.
CLOSING_MARGIN = 16


@dataclass
class Generation:
    """What one decode produced, with the numbers a benchmark needs."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    reused_prefix_tokens: int
    forward_passes: int
    forced_tokens: int  # fast-forwarded: verified in the same pass as a model token
    grammar_seconds: float  # computing and applying token masks (the constraint's cost)
    prefill_seconds: float
    total_seconds: float
    finish_reason: str  # "complete" | "stop" | "length"
    # Steps where the copy constraint would have left no token and the grammar alone chose
    # (the value then may not be a span of the source); 0 without ``sources``.
    extractive_relaxed: int = 0
    # log-probability of each of ``token_ids`` under the model's unmasked distribution
    token_logprobs: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        decode = self.total_seconds - self.prefill_seconds
        return len(self.token_ids) / decode if decode > 0 else 0.0


class JsonConstraint:
    """A compiled JSON-schema grammar for one tokenizer; matchers are created per decode.

    ``extractive``: the string fields whose values must be spans of the source text when a
    decode is given ``sources`` (path pattern -> field); by default those the schema marks
    with ``x-extractive`` (``SchemaSpec.extractive_paths()``).
    """

    def __init__(self, loaded: LoadedModel, schema: dict[str, Any], *,
                 extractive: Mapping[str, ExtractiveField] | None = None) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        info = _tokenizer_info(loaded)
        self._info = info
        self.extractive = dict(extractive_fields(schema) if extractive is None else extractive)
        self._plan: CopyPlan | None = None
        compiler = xgr.GrammarCompiler(info)
        # Compact separators: the grammar then matches our few-shot examples byte for byte.
        self.compiled = compiler.compile_json_schema(
            json.dumps(schema), any_whitespace=False, separators=(",", ":"), strict_mode=True)
        self.vocab_size = info.vocab_size
        self.closers = _closing_token_ids(loaded.tokenizer)
        # Enough tokens to finish from anywhere: the skeleton with one item per array.
        skeleton_text = json.dumps(skeleton(schema), separators=(",", ":"))
        self.reserve = len(loaded.tokenizer.encode(skeleton_text, add_special_tokens=False)) \
            + CLOSING_MARGIN

    def matcher(self) -> Any:
        return self._xgr.GrammarMatcher(self.compiled)

    def copy_plan(self) -> CopyPlan | None:
        """What the copy constraint of every decode shares (None: no extractive field)."""
        if self._plan is None and self.extractive:
            self._plan = CopyPlan(token_index(self._info), self.extractive)
        return self._plan


_TOKENIZER_INFO: dict[int, Any] = {}


def _tokenizer_info(loaded: LoadedModel) -> Any:
    """xgrammar's view of the vocabulary; building it scans the vocab, so once per tokenizer."""
    import xgrammar as xgr

    key = id(loaded.tokenizer)
    if key not in _TOKENIZER_INFO:
        head = loaded.model.get_output_embeddings()
        # out_features, not weight.shape: an int8 (dynamically quantized) head has no tensor
        vocab_size = getattr(head, "out_features", None) or head.weight.shape[0]
        _TOKENIZER_INFO[key] = xgr.TokenizerInfo.from_huggingface(loaded.tokenizer,
                                                                   vocab_size=vocab_size)
    return _TOKENIZER_INFO[key]


def _closing_token_ids(tokenizer: Any) -> list[int]:
    """Single-character tokens that end a string, an array, an object (in that priority)."""
    ids = []
    for char in ('"', "]", "}"):
        encoded = tokenizer.encode(char, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(encoded[0])
    return ids


def _stop_ids(loaded: LoadedModel) -> set[int]:
    ids = {loaded.tokenizer.eos_token_id}
    config_eos = getattr(loaded.model.generation_config, "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif isinstance(config_eos, list):
        ids.update(config_eos)
    return {i for i in ids if i is not None}


class PrefixCache:
    """The KV cache of a fixed prompt prefix (instructions, schema, few-shot turns), computed
    once and copied into every request that starts with the same tokens."""

    def __init__(self, loaded: LoadedModel, prefix: str) -> None:
        self.loaded = loaded
        self.ids: list[int] = loaded.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        self._cache: Any = None

    @property
    def cache(self) -> Any:
        """transformers' KV cache of the prefix, computed on first use (the llama.cpp
        backend keeps its own and never asks)."""
        if self._cache is None:
            loaded = self.loaded
            with torch.inference_mode():
                out = loaded.model(input_ids=torch.tensor([self.ids], device=loaded.device),
                                   use_cache=True, logits_to_keep=1)
            self._cache = out.past_key_values
        return self._cache

    def matches(self, input_ids: list[int]) -> bool:
        """Whether a prompt starts with the prefix (and goes on after it)."""
        n = len(self.ids)
        return len(input_ids) > n and input_ids[:n] == self.ids


def generate(loaded: LoadedModel, prompt: str, *, constraint: JsonConstraint | None = None,
             max_new_tokens: int = 512, stop_at_json_end: bool = True,
             prefix: PrefixCache | None = None, fast_forward: bool = False,
             packed: bool = True, source: str | None = None) -> Generation:
    """Greedy-decode one answer for ``prompt`` (already rendered with the chat template).

    With ``prefix``, the prompt's first tokens come from the cached prefix and only the rest
    is prefilled; the answer is the same, the time to first token shorter.

    With ``fast_forward`` (constrained only), the text the grammar forces next (keys, quotes,
    brackets) is tokenized and rides along in the same forward pass as the model's token, so
    it costs no model step of its own. The logits computed at those positions verify it, as
    in speculative decoding: from the first forced token greedy decoding would not have
    chosen, the rest is rolled back and the model's choice is taken. The answer is therefore
    the greedy answer, with fewer forward passes.

    With ``source`` (constrained only), the constraint's extractive fields can only be
    filled with spans of that text (see ``generate_many``).
    """
    return generate_many(loaded, [prompt], constraint=constraint,
                         max_new_tokens=max_new_tokens, stop_at_json_end=stop_at_json_end,
                         prefix=prefix, fast_forward=fast_forward, packed=packed,
                         sources=None if source is None else [source])[0]


def generate_many(loaded: LoadedModel, prompts: Sequence[str], *,
                  constraint: JsonConstraint | None = None, max_new_tokens: int = 512,
                  stop_at_json_end: bool = True, prefix: PrefixCache | None = None,
                  fast_forward: bool = False, packed: bool = True,
                  sources: Sequence[str] | None = None) -> list[Generation]:
    """Greedy-decode several prompts in one batch (one grammar matcher per sequence).

    Each answer is the one ``generate`` gives for its prompt alone, up to floating-point
    differences of batched arithmetic; rows leave the batch as they finish. The prefix
    cache is used when every prompt starts with it. ``packed``: run the batch as one packed
    sequence (no padding, prefix shared) where the model supports it; off, or for other
    models, as a padded batch.

    ``sources`` (one text per prompt, constrained only): the text each answer is extracted
    from; every value of the constraint's extractive fields is then copied from it, token
    by token (``decoding.extractive``), so grounding finds each of them in that text.
    """
    plan = _copy_plan(constraint, sources, len(prompts))
    started = time.perf_counter()
    packed = packed and packing.supports(loaded.model)
    decoder = BatchDecoder(loaded, constraint, max_new_tokens=max_new_tokens,
                           stop_at_json_end=stop_at_json_end,
                           fast_forward=fast_forward and _fast_forward_pays(loaded, packed),
                           stop_ids=_stop_ids(loaded), packed=packed, copy_plan=plan)
    if constraint is not None and max_new_tokens <= decoder.reserve:
        raise GenerationError(f"max_new_tokens={max_new_tokens} is too small for this schema",
                              hint=f"use more than {decoder.reserve} (the tokens needed to "
                                   "close an answer from any point)")
    encoded = [loaded.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = prefix is not None and all(prefix.matches(ids) for ids in encoded)
    start = len(prefix.ids) if shared else 0
    rows = [decoder.new_row(ids[start:], start, source=sources[i] if plan else None)
            for i, ids in enumerate(encoded)]
    prefill_seconds = decoder.run(rows, prefix if shared else None)
    total = time.perf_counter() - started
    return [Generation(text=loaded.tokenizer.decode(row.generated, skip_special_tokens=True),
                       token_ids=row.generated, prompt_tokens=len(ids),
                       reused_prefix_tokens=start, forward_passes=row.forward_passes,
                       forced_tokens=row.forced_kept, grammar_seconds=row.grammar_seconds,
                       prefill_seconds=prefill_seconds,
                       total_seconds=total, finish_reason=row.finish or "length",
                       extractive_relaxed=row.copy.relaxed if row.copy else 0,
                       token_logprobs=row.logprobs)
            for row, ids in zip(rows, encoded)]


def _copy_plan(constraint: JsonConstraint | None, sources: Sequence[str] | None,
               prompts: int) -> CopyPlan | None:
    if sources is None:
        return None
    if constraint is None:
        raise GenerationError("sources were given without a JSON constraint",
                              hint="copying values from the source needs constrained decoding")
    if len(sources) != prompts:
        raise GenerationError(f"{len(sources)} sources for {prompts} prompts",
                              hint="pass one source text per prompt")
    return constraint.copy_plan()


def _fast_forward_pays(loaded: LoadedModel, packed: bool) -> bool:
    """Whether fast-forward saves time and keeps answers greedy here. Not on llama.cpp: it
    runs a step whose rows carry unequal token counts as several passes, one per count, so
    forced tokens cost more than decoding them (64 doping sentences: 20.85 s with, 17.04 s
    without; BENCHMARKS.md)."""
    if loaded.engine is not None:
        return False
    return packed or _full_attention_only(loaded.model)


def _full_attention_only(model: Any) -> bool:
    """Whether fast-forward keeps padded batches greedy-identical for this model. Rejected
    forced tokens stay in the KV cache, masked out; transformers' sliding-window layers
    (Gemma 3) still count those slots against their window, so there they could change what
    the model attends to. (Packed steps window by position, so they have no such limit.)"""
    config = getattr(model.config, "text_config", None) or model.config
    layer_types = getattr(config, "layer_types", None)
    return not layer_types or all(kind == "full_attention" for kind in layer_types)


def choose(loaded: LoadedModel, prompt: str, options: Sequence[str]) -> str:
    """The option whose first token the model rates highest after ``prompt`` (one forward)."""
    tokenizer = loaded.tokenizer
    input_ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = loaded.model(input_ids=input_ids.to(loaded.device),
                              logits_to_keep=1).logits[0, -1].float()
    def score(option: str) -> float:
        variants = {option, option.capitalize(), " " + option, " " + option.capitalize()}
        firsts = {tokenizer.encode(v, add_special_tokens=False)[0] for v in variants}
        return max(float(logits[i]) for i in firsts)
    return max(options, key=score)
