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
    forced_tokens: int  # fast-forwarded: verified in the same pass as a model token
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
             prefix: PrefixCache | None = None, fast_forward: bool = False) -> Generation:
    """Greedy-decode one answer for ``prompt`` (already rendered with the chat template).

    With ``prefix``, the prompt's first tokens come from the cached prefix and only the rest
    is prefilled; the answer is the same, the time to first token shorter.

    With ``fast_forward`` (constrained only), the text the grammar forces next (keys, quotes,
    brackets) is tokenized and rides along in the same forward pass as the model's token, so
    it costs no model step of its own. The logits computed at those positions verify it, as
    in speculative decoding: from the first forced token greedy decoding would not have
    chosen, the rest is rolled back and the model's choice is taken. The answer is therefore
    the greedy answer, with fewer forward passes.
    """
    if constraint is not None and max_new_tokens <= constraint.reserve:
        raise GenerationError(f"max_new_tokens={max_new_tokens} is too small for this schema",
                              hint=f"use more than {constraint.reserve} (the tokens needed to "
                                   "close an answer from any point)")
    started = time.perf_counter()
    tokenizer = loaded.tokenizer
    prompt_ids: list[int] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reused = prefix.split(prompt_ids) if prefix is not None else None
    past, fresh_ids = reused if reused is not None else (None, prompt_ids)
    decoder = _Decoder(loaded, constraint, max_new_tokens=max_new_tokens,
                       stop_at_json_end=stop_at_json_end,
                       fast_forward=fast_forward and constraint is not None
                       and _cache_can_roll_back(loaded.model))
    finish, prefill_seconds = decoder.run(fresh_ids, past, started)
    generated = decoder.generated
    return Generation(text=tokenizer.decode(generated, skip_special_tokens=True),
                      token_ids=generated, prompt_tokens=len(prompt_ids),
                      reused_prefix_tokens=len(prompt_ids) - len(fresh_ids),
                      forward_passes=decoder.forward_passes, forced_tokens=decoder.forced_kept,
                      prefill_seconds=prefill_seconds,
                      total_seconds=time.perf_counter() - started, finish_reason=finish)


class _Decoder:
    """The state of one greedy decode: tokens so far, grammar matcher, counters."""

    def __init__(self, loaded: LoadedModel, constraint: JsonConstraint | None, *,
                 max_new_tokens: int, stop_at_json_end: bool, fast_forward: bool) -> None:
        self.loaded, self.constraint = loaded, constraint
        self.max_new_tokens = max_new_tokens
        self.stop_at_json_end = stop_at_json_end
        self.fast_forward = fast_forward
        self.stop_ids = _stop_ids(loaded)
        self.matcher = constraint.matcher() if constraint else None
        self.bitmask = (constraint._xgr.allocate_token_bitmask(1, constraint.vocab_size)
                        if constraint else None)
        self.scanner = _JsonEndScanner()
        self.generated: list[int] = []
        self.forward_passes = 0
        self.forced_kept = 0

    def run(self, fresh_ids: list[int], past: Any, started: float) -> tuple[str, float]:
        """Decode until the answer completes, a stop token, or the budget; (finish, prefill s)."""
        step_input = list(fresh_ids)
        prefill_seconds = 0.0
        with torch.inference_mode():
            while len(self.generated) < self.max_new_tokens:
                forced = self._forced() if self.fast_forward else []
                # logits_to_keep: the prompt's other positions never need the LM head.
                out = self.loaded.model(
                    input_ids=torch.tensor([step_input + forced], device=self.loaded.device),
                    past_key_values=past, use_cache=True, logits_to_keep=len(forced) + 1)
                self.forward_passes += 1
                past = out.past_key_values
                if self.forward_passes == 1:
                    prefill_seconds = time.perf_counter() - started
                logits = out.logits[0].float().cpu()  # (len(forced) + 1, V); masks on CPU
                token, finish = self._verify(forced, logits, past)
                if finish is not None:
                    return finish, prefill_seconds
                step_input = [token]
        return "length", prefill_seconds

    def _choose(self, logits: torch.Tensor) -> int:
        """The greedy token for one position (masked by the grammar when constrained)."""
        if self.matcher is None:
            return int(torch.argmax(logits))
        self.matcher.fill_next_token_bitmask(self.bitmask)
        self.constraint._xgr.apply_token_bitmask_inplace(logits.unsqueeze(0), self.bitmask)
        if self.max_new_tokens - len(self.generated) <= self.constraint.reserve:
            closer = _pick_closer(logits, self.constraint.closers)
            if closer is not None:
                return closer
        return int(torch.argmax(logits))

    def _verify(self, forced: list[int], logits: torch.Tensor,
                past: Any) -> tuple[int, str | None]:
        """Keep the forced tokens greedy decoding agrees with, then take the next token.

        The forced tokens were accepted by the matcher when proposed; row i of ``logits``
        predicts forced[i], the last row the token after them.
        """
        if forced:
            self.matcher.rollback(len(forced))
        for position, proposed in enumerate(forced):
            choice = self._choose(logits[position])
            if choice != proposed:
                past.crop(-(len(forced) - position))  # drop the rejected tokens' keys/values
                return self._take(choice)
            self.matcher.accept_token(proposed)
            self.generated.append(proposed)
            self.forced_kept += 1
        return self._take(self._choose(logits[-1]))

    def _take(self, token: int) -> tuple[int, str | None]:
        """Append the chosen token; the finish reason if decoding ends here."""
        if token in self.stop_ids:
            completed = self.matcher is not None and self.matcher.is_completed()
            return token, "complete" if completed else "stop"
        if self.matcher is not None:
            if not self.matcher.accept_token(token):
                raise GenerationError(f"grammar rejected token {token} at step "
                                      f"{len(self.generated)}")
            self.generated.append(token)
            return token, "complete" if self.matcher.is_completed() else None
        self.generated.append(token)
        if self.stop_at_json_end and self.scanner.feed(self.loaded.tokenizer.decode([token])):
            return token, "complete"
        return token, None

    def _forced(self) -> list[int]:
        """Tokens of the text the grammar forces next, accepted by the matcher (to verify).

        Never more than fit before the closing reserve, so no forced position is decoded in
        closing mode.
        """
        room = self.max_new_tokens - self.constraint.reserve - len(self.generated) - 1
        text = self.matcher.find_jump_forward_string()
        if not text or room <= 0:
            return []
        accepted: list[int] = []
        for token in self.loaded.tokenizer.encode(text, add_special_tokens=False)[:room]:
            if not self.matcher.accept_token(token):
                break
            accepted.append(token)
        return accepted


def _cache_can_roll_back(model: Any) -> bool:
    """Only full-attention KV caches can drop their last positions at any length (sliding
    windows, e.g. Gemma 3's, forget what a rollback would need): fast-forward needs that."""
    config = getattr(model.config, "text_config", None) or model.config
    layer_types = getattr(config, "layer_types", None)
    return not layer_types or all(kind == "full_attention" for kind in layer_types)


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
