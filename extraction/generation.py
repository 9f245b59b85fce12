"""Greedy decoding with an optional JSON-schema constraint (xgrammar token masks).

We run our own decode loop instead of ``model.generate`` so that we control the budget: when
few tokens are left, decoding switches to "closing mode" and prefers the tokens that end
strings, arrays and objects, so a constrained output always finishes as valid JSON.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from extraction.errors import GenerationError
from extraction.models import LoadedModel
from extraction.schemas.base import skeleton

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
    prefill_seconds: float
    total_seconds: float
    finish_reason: str  # "complete" | "stop" | "length"

    @property
    def tokens_per_second(self) -> float:
        decode = self.total_seconds - self.prefill_seconds
        return len(self.token_ids) / decode if decode > 0 else 0.0


class JsonConstraint:
    """A compiled JSON-schema grammar for one tokenizer; matchers are created per decode."""

    def __init__(self, loaded: LoadedModel, schema: dict[str, Any]) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        info = _tokenizer_info(loaded)
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


_TOKENIZER_INFO: dict[int, Any] = {}


def _tokenizer_info(loaded: LoadedModel) -> Any:
    """xgrammar's view of the vocabulary; building it scans the vocab, so once per tokenizer."""
    import xgrammar as xgr

    key = id(loaded.tokenizer)
    if key not in _TOKENIZER_INFO:
        vocab_size = loaded.model.get_output_embeddings().weight.shape[0]
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
        self.ids: list[int] = loaded.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            out = loaded.model(input_ids=torch.tensor([self.ids], device=loaded.device),
                               use_cache=True, logits_to_keep=1)
        self.cache = out.past_key_values

    def split(self, input_ids: list[int]) -> tuple[Any, list[int]] | None:
        """(a private copy of the cache, the tokens after the prefix), or None if no match."""
        n = len(self.ids)
        if len(input_ids) <= n or input_ids[:n] != self.ids:
            return None
        return copy.deepcopy(self.cache), input_ids[n:]


def generate(loaded: LoadedModel, prompt: str, *, constraint: JsonConstraint | None = None,
             max_new_tokens: int = 512, stop_at_json_end: bool = True,
             prefix: PrefixCache | None = None) -> Generation:
    """Greedy-decode one answer for ``prompt`` (already rendered with the chat template).

    With ``prefix``, the prompt's first tokens come from the cached prefix and only the rest
    is prefilled; the answer is the same, the time to first token shorter.
    """
    if constraint is not None and max_new_tokens <= constraint.reserve:
        raise GenerationError(f"max_new_tokens={max_new_tokens} is too small for this schema",
                              hint=f"use more than {constraint.reserve} (the tokens needed to "
                                   "close an answer from any point)")
    started = time.perf_counter()
    tokenizer, model = loaded.tokenizer, loaded.model
    prompt_ids: list[int] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    prompt_tokens = len(prompt_ids)
    reused = prefix.split(prompt_ids) if prefix is not None else None
    past, fresh_ids = reused if reused is not None else (None, prompt_ids)
    stop_ids = _stop_ids(loaded)
    matcher = constraint.matcher() if constraint else None
    bitmask = (constraint._xgr.allocate_token_bitmask(1, constraint.vocab_size)
               if constraint else None)

    generated: list[int] = []
    step_input = torch.tensor([fresh_ids], device=loaded.device)  # (1, T_fresh)
    prefill_seconds = 0.0
    finish = "length"
    scanner = _JsonEndScanner()
    with torch.inference_mode():
        for step in range(max_new_tokens):
            # logits_to_keep=1: the prompt's other positions never need the LM head.
            out = model(input_ids=step_input, past_key_values=past, use_cache=True,
                        logits_to_keep=1)
            past = out.past_key_values
            logits = out.logits[0, -1, :].float().cpu()  # (V,); masks are applied on CPU
            if step == 0:
                prefill_seconds = time.perf_counter() - started
            if matcher is not None:
                matcher.fill_next_token_bitmask(bitmask)
                constraint._xgr.apply_token_bitmask_inplace(logits.unsqueeze(0), bitmask)
                closing = max_new_tokens - step <= constraint.reserve
                token = _pick_closer(logits, constraint.closers) if closing else None
                if token is None:
                    token = int(torch.argmax(logits))
                if token in stop_ids:
                    finish = "complete" if matcher.is_completed() else "stop"
                    break
                if not matcher.accept_token(token):
                    raise GenerationError(f"grammar rejected token {token} at step {step}")
                generated.append(token)
                if matcher.is_completed():
                    finish = "complete"
                    break
            else:
                token = int(torch.argmax(logits))
                if token in stop_ids:
                    finish = "stop"
                    break
                generated.append(token)
                if stop_at_json_end and scanner.feed(tokenizer.decode([token])):
                    finish = "complete"
                    break
            step_input = torch.tensor([[token]], device=loaded.device)
    text = tokenizer.decode(generated, skip_special_tokens=True)
    return Generation(text=text, token_ids=generated, prompt_tokens=prompt_tokens,
                      reused_prefix_tokens=prompt_tokens - len(fresh_ids),
                      forward_passes=len(generated) + (finish != "complete"),
                      prefill_seconds=prefill_seconds,
                      total_seconds=time.perf_counter() - started, finish_reason=finish)


def _pick_closer(logits: torch.Tensor, closers: list[int]) -> int | None:
    """In closing mode: the first allowed closing token, else None (let the model choose)."""
    for token in closers:
        if torch.isfinite(logits[token]):
            return token
    return None


class _JsonEndScanner:
    """Tracks braces outside strings to stop unconstrained output at the end of the object."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.started = False

    def feed(self, piece: str) -> bool:
        for char in piece:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif char == "\\":
                    self.escaped = True
                elif char == '"':
                    self.in_string = False
            elif char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth += 1
                self.started = True
            elif char in "}]":
                self.depth -= 1
                if self.started and self.depth <= 0:
                    return True
        return False


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
