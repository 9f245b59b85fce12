"""Copy-constrained (extractive) string values: a field marked ``x-extractive`` can only be
filled with a span of the unit's source text, enforced token by token in the same mask as
the JSON grammar.

A span is what grounding (``checking.grounding``) finds: the value copied as written,
ending where an exact match may end ("Er" in "Er3+"), or a normalised copy (dashes and
minus as "-", sub/superscript digits as digits, a whitespace run as one space, any case
where the field says "ignore-case") of at least three characters at word boundaries. The
value may not start or end with a space; an empty value is left to the schema (allowed
where it has no minimum length, e.g. "no formula"). A value holds at least one letter or
digit: grounding would find "-" or "(" too, but no name or formula is only punctuation.
A list item may repeat an earlier item of its list only where nothing else may come: a
small model that cannot write what it wanted tends to repeat the last value until the list
is full, which costs quality and, in a batch, the time of the whole batch.

How: the source becomes units (a character, or a whitespace run), each with the byte
spellings a value may use for it. A decoding state is a set of positions in the source
(where the value so far can continue); the tokens that may come next are found by walking
the source from those positions and looking each walked byte string up in an index of the
vocabulary, never by scanning the vocabulary. A position survives only if the value can
still end at a valid boundary within the field's length bound, so the decoder never walks
into a dead end. The value's first token (every word start is a position) is computed once
per source and field kind and reused.

Where decoding is: a small JSON path tracker (``PathTracker``) is fed the bytes of every
accepted token. Tokens that carry the opening quote of an extractive value and some of its
text (e.g. ``"(``) are checked by feeding them through a copy of the tracker.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch

# Grounding's own per-character rule, so that the constraint and grounding cannot drift apart.
from extraction.checking.grounding import (MIN_NORMALISED_CHARS, NormalisedText,
                                          compatible_form, normalise_char)
from extraction.decoding.json_path import (_AFTER, _ARR_FIRST, _ARRAY, _IN_STR, PathTracker,
                                           path_of)
from extraction.decoding.token_index import TokenIndex
from extraction.schemas.base import ExtractiveField

# Tokens kept in reserve, beyond the grammar's own, to finish an extractive value at a
# valid boundary when the budget runs out (closing mode walks to the nearest one).
EXTRACTIVE_MARGIN = 8
_QUOTE = 34
_SOURCES_KEPT = 64  # per plan: reflexion retries and other fields reuse a unit's tables
# A decoding state: (unit to match next, characters written, copied exactly so far, the
# start is a normalised word start, a letter or digit written, bytes of a multi-byte
# spelling of that unit written).
State = tuple[int, int, bool, bool, bool, bytes]


# --- the source text -----------------------------------------------------------------------

def _safe(text: str) -> bool:
    """Whether a JSON string of our grammar can hold ``text`` as is (no quote, backslash,
    control character or surrogate)."""
    return all(ord(c) >= 0x20 and c not in '"\\' and not 0xD800 <= ord(c) <= 0xDFFF
               for c in text)


def _folded(text: str) -> str:
    return "".join(normalise_char(c) for c in text)


def _spellings(chars: str, space: bool, ignore_case: bool) -> tuple[tuple[bytes, bool, int], ...]:
    """(bytes, copied exactly, characters) for each way a value may write one unit."""
    if space:  # one space for the run (what grounding compares), or the run itself
        out = [(b" ", chars == " ", 1)]
        if chars != " " and _safe(chars):
            out.append((chars.encode(), True, len(chars)))
        return tuple(out)
    out = [(chars.encode(), True, 1)] if _safe(chars) else []
    target = normalise_char(chars)
    compatible = compatible_form(chars)
    variants = {compatible}
    if ignore_case:
        variants |= {chars.lower(), chars.upper(), target, compatible.lower(),
                     compatible.upper()}
    for variant in sorted(variants - {chars}):
        if variant and _safe(variant) and not any(c.isspace() for c in variant) \
                and _folded(variant) == target:
            out.append((variant.encode(), False, len(variant)))
    return tuple(out)


class CopySource:
    """One source text as units with their spellings and, per end position, whether a
    value may end there; answers which tokens may continue a set of states."""

    def __init__(self, text: str, *, ignore_case: bool, index: TokenIndex) -> None:
        self.index = index
        spans, space = [], []
        position = 0
        while position < len(text):
            end = position + 1
            is_space = normalise_char(text[position]) == " "
            while is_space and end < len(text) and normalise_char(text[end]) == " ":
                end += 1
            spans.append((position, end))
            space.append(is_space)
            position = end
        self.units = len(spans)
        self.alnum = [any(c.isalnum() for c in text[s:e]) for s, e in spans]
        self.spellings = [_spellings(text[s:e], sp, ignore_case)
                          for (s, e), sp in zip(spans, space)]
        normalised = NormalisedText(text)
        first = [bisect.bisect_left(normalised.origin, s) for s, _ in spans] \
            + [len(normalised.text)]
        self.normalised_start = [n == 0 or not normalised.text[n - 1].isalnum()
                                 for n in first[:-1]]
        self.starts = [u for u, (s, _) in enumerate(spans)
                       if not space[u] and self.spellings[u]
                       and (s == 0 or not text[s - 1].isalnum())]
        # End k (before unit k): how grounding's exact and word boundaries judge it.
        self.exact_end = [False] * (self.units + 1)
        self.normalised_end = [False] * (self.units + 1)
        for k in range(1, self.units + 1):
            if space[k - 1]:
                continue
            after = text[spans[k][0]] if k < self.units else " "
            self.exact_end[k] = not (after.isalpha() and text[spans[k - 1][1] - 1].isalnum())
            n = first[k]
            self.normalised_end[k] = n >= len(normalised.text) \
                or not normalised.text[n].isalnum()
        self._lookahead()
        self._first: dict[int, tuple[list[int], dict, list]] = {}
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def _lookahead(self) -> None:
        """Tables for ``can_end``: characters written per unit (exact copy, shortest
        spelling), the next end of each kind and the next unit a value cannot cross."""
        units, never = self.units, self.units + 1
        self.cum_exact, self.cum_min = [0], [0]
        for spellings in self.spellings:
            exact = [n for _, is_exact, n in spellings if is_exact]
            self.cum_exact.append(self.cum_exact[-1] + (exact[0] if exact else 0))
            self.cum_min.append(self.cum_min[-1] + min((n for _, _, n in spellings), default=0))
        self.next_exact_end = [never] * (units + 2)
        self.next_normalised_end = [never] * (units + 2)
        for k in range(units, -1, -1):
            self.next_exact_end[k] = k if self.exact_end[k] else self.next_exact_end[k + 1]
            self.next_normalised_end[k] = k if self.normalised_end[k] \
                else self.next_normalised_end[k + 1]
        self.next_alnum = [never] * (units + 1)
        for u in range(units - 1, -1, -1):
            self.next_alnum[u] = u if self.alnum[u] else self.next_alnum[u + 1]
        self.exact_barrier = [units] * (units + 1)
        self.barrier = [units] * (units + 1)
        for u in range(units - 1, -1, -1):
            spellings = self.spellings[u]
            self.exact_barrier[u] = u if not any(e for _, e, _ in spellings) \
                else self.exact_barrier[u + 1]
            self.barrier[u] = u if not spellings else self.barrier[u + 1]

    # --- states ------------------------------------------------------------------------------

    def start_states(self) -> list[State]:
        return [(u, 0, True, self.normalised_start[u], False, b"") for u in self.starts]

    def can_close(self, state: State, limit: int) -> bool:
        """Whether the value may end here (an empty value: where the schema allows it)."""
        unit, written, exact, normalised, alnum, partial = state
        if partial:
            return False
        if written == 0:
            return True
        return alnum and written <= limit and ((exact and self.exact_end[unit]) or (
            normalised and written >= MIN_NORMALISED_CHARS and self.normalised_end[unit]))

    def can_end(self, state: State, limit: int) -> bool:
        """Whether some continuation ends the value validly within ``limit`` characters."""
        unit, written, exact, normalised, alnum, partial = state
        if partial:
            alnum = alnum or self.alnum[unit]
            return any(self._reachable(unit + 1, written + n, exact and is_exact, normalised,
                                       alnum, limit)
                       for data, is_exact, n in self.spellings[unit]
                       if len(data) > len(partial) and data.startswith(partial))
        return self._reachable(unit, written, exact, normalised, alnum, limit)

    def _reachable(self, unit: int, written: int, exact: bool, normalised: bool, alnum: bool,
                   limit: int) -> bool:
        if written > limit:
            return False
        first = unit if written else unit + 1
        if not alnum:  # the end comes after the next letter or digit
            if self.next_alnum[unit] >= self.units:
                return False
            first = max(first, self.next_alnum[unit] + 1)
        if exact:
            k = self.next_exact_end[first]
            if k <= self.exact_barrier[unit] \
                    and written + self.cum_exact[k] - self.cum_exact[unit] <= limit:
                return True
        if normalised:
            k, barrier = self.next_normalised_end[first], self.barrier[unit]
            while k <= barrier:
                n = written + self.cum_min[k] - self.cum_min[unit]
                if n > limit:
                    return False
                if n >= MIN_NORMALISED_CHARS:
                    return True
                k = self.next_normalised_end[k + 1]
        return False

    def _edges(self, state: State) -> list[tuple[bytes, State, State | None]]:
        """(bytes still to write, state after them, None) per spelling of the next unit."""
        unit, written, exact, normalised, alnum, partial = state
        if unit >= self.units:
            return []
        alnum = alnum or self.alnum[unit]
        out = []
        for data, is_exact, n in self.spellings[unit]:
            if partial:
                if len(data) <= len(partial) or not data.startswith(partial):
                    continue
                data = data[len(partial):]
            out.append((data, (unit + 1, written + n, exact and is_exact, normalised, alnum,
                               b"")))
        return out

    def advance(self, states: list[State], data: bytes, limit: int) -> list[State]:
        """The states after writing ``data`` (bytes without a quote) from ``states``."""
        out: list[State] = []
        for state in states:
            self._walk(state, data, limit, out)
        return [s for s in dict.fromkeys(out) if self.can_end(s, limit)]

    def _walk(self, state: State, data: bytes, limit: int, out: list[State]) -> None:
        if not data:
            out.append(state)
            return
        if not state[5] and state[1] >= limit:
            return
        for rest, after in self._edges(state):
            if data.startswith(rest):
                self._walk(after, data[len(rest):], limit, out)
            elif rest.startswith(data):
                out.append(state[:5] + (state[5] + data,))

    def explore(self, states: list[State], limit: int, *, written: bytes = b"",
                taken: frozenset[bytes] = frozenset()
                ) -> tuple[list[int], dict[bytes, list[State]], list[tuple[int, bytes]],
                           list[int]]:
        """Tokens that may come next: (allowed ids, states after each allowed quote-free
        token's bytes, closing tokens whose bytes after the quote hold another quote: the
        caller checks those against the JSON structure, closing tokens that would make the
        value, ``written`` so far, one of ``taken``)."""
        index = self.index
        plain, quoted, prefixes = index.plain, index.quoted, index.prefixes
        allowed: list[int] = []
        after: dict[bytes, list[State]] = {}
        deferred: list[tuple[int, bytes]] = []
        repeats: list[int] = []
        stack: list[tuple[bytes, list[State]]] = [(b"", states)]
        while stack:
            prefix, current = stack.pop()
            heads = quoted.get(prefix)
            if heads and any(self.can_close(s, limit) for s in current):
                if taken and written + prefix in taken:
                    repeats.extend(token for token, _ in heads)
                for token, rest in heads:
                    if b'"' in rest:
                        deferred.append((token, rest))
                    else:
                        allowed.append(token)
            if prefix and prefix not in prefixes:
                continue
            grown: dict[bytes, list[State]] = {}
            for state in current:
                if not state[5] and state[1] >= limit:
                    continue
                for rest, done in self._edges(state):
                    for cut in range(1, len(rest)):  # tokens that end inside a character
                        grown.setdefault(prefix + rest[:cut], []).append(
                            state[:5] + (state[5] + rest[:cut],))
                    grown.setdefault(prefix + rest, []).append(done)
            for text, new in grown.items():
                if text not in prefixes and text not in plain and text not in quoted:
                    continue
                new = [s for s in new if self.can_end(s, limit)]
                if not new:
                    continue
                ids = plain.get(text)
                if ids:
                    allowed.extend(ids)
                    after[text] = after.get(text, []) + new
                stack.append((text, new))
        return allowed, after, deferred, repeats

    def first(self, limit: int
              ) -> tuple[list[int], dict[bytes, list[State]], list[tuple[int, bytes]]]:
        """``explore`` from every word start (cached): the first token of any value."""
        if limit not in self._first:
            allowed, after, deferred, _ = self.explore(self.start_states(), limit)
            if not self.starts:  # nothing to copy: still the empty value, where allowed
                for token, rest in self.index.quoted.get(b"", ()):
                    if b'"' in rest:
                        deferred.append((token, rest))
                    else:
                        allowed.append(token)
            self._first[limit] = allowed, after, deferred
        return self._first[limit]

    def start(self, limit: int, width: int
              ) -> tuple[np.ndarray, dict[bytes, list[State]], list[tuple[int, bytes]]]:
        """``first`` with the allowed tokens as a bitmask of ``width`` words (cached)."""
        if (limit, width) not in self._masks:
            self._masks[limit, width] = word_mask(self.first(limit)[0], width)
        allowed, after, deferred = self.first(limit)
        return self._masks[limit, width], after, deferred


def word_mask(tokens: list[int], width: int) -> np.ndarray:
    """A (width,) uint32 bitmask with the bits of ``tokens`` set (xgrammar's layout)."""
    mask = np.zeros(width, dtype=np.uint32)
    if tokens:
        np.bitwise_or.at(mask, *_bits([t for t in tokens if t < 32 * width]))
    return mask


def _bits(tokens: list[int], *, invert: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(word of each token, its bit) for ``np.bitwise_*.at``."""
    ids = np.asarray(tokens, dtype=np.int64)
    bits = np.left_shift(np.uint32(1), (ids & 31).astype(np.uint32))
    return ids >> 5, ~bits if invert else bits


# --- one constraint's tables and one row's state --------------------------------------------

class CopyPlan:
    """What every row of one constraint shares: the token index, the extractive fields,
    structural checks of tokens that carry a quote, and recently used sources."""

    def __init__(self, index: TokenIndex, fields: Mapping[str, ExtractiveField]) -> None:
        self.index = index
        self.fields = dict(fields)
        self._field_at: dict[tuple, ExtractiveField | None] = {}
        self._suspects: dict[tuple, tuple[int, ...]] = {}
        self._touches: dict[tuple, bool] = {}
        self._sources: OrderedDict[tuple[str, bool], CopySource] = OrderedDict()

    def field_at(self, frames: tuple) -> ExtractiveField | None:
        if frames not in self._field_at:
            self._field_at[frames] = self.fields.get(path_of(frames))
        return self._field_at[frames]

    def source(self, text: str, ignore_case: bool) -> CopySource:
        key = (text, ignore_case)
        if key in self._sources:
            self._sources.move_to_end(key)
        else:
            self._sources[key] = CopySource(text, ignore_case=ignore_case, index=self.index)
            if len(self._sources) > _SOURCES_KEPT:
                self._sources.popitem(last=False)
        return self._sources[key]

    def touches(self, signature: tuple, data: bytes) -> bool:
        """Whether ``data`` fed from ``signature`` writes into an extractive value."""
        key = (signature, data)
        if key not in self._touches:
            tracker = PathTracker.at(signature)
            field = None
            touched = False
            for byte in data:
                if field is not None and tracker.mode == _IN_STR and byte != _QUOTE:
                    touched = True
                    break
                if tracker.step(byte):
                    field = self.field_at(tracker.frames)
                elif tracker.mode != _IN_STR:
                    field = None
            self._touches[key] = touched
        return self._touches[key]

    def suspects(self, signature: tuple) -> tuple[int, ...]:
        """Tokens that, from outside any extractive value, would write into one."""
        if signature not in self._suspects:
            data = self.index.token_bytes
            self._suspects[signature] = tuple(t for t in self.index.tailed
                                              if self.touches(signature, data[t]))
        return self._suspects[signature]


class CopyState:
    """One row's copy constraint: where decoding is and, inside an extractive value, the
    states of the value so far."""

    def __init__(self, plan: CopyPlan, text: str) -> None:
        self.plan, self.text = plan, text
        self.tracker = PathTracker()
        self.states: list[State] | None = None  # inside an extractive value
        self.field: ExtractiveField | None = None
        self.source: CopySource | None = None
        self.at_start = False
        self.after: dict[bytes, list[State]] = {}
        self.relaxed = 0  # steps where the copy mask was lifted (it would have left nothing)
        self.forced_text = 0  # value bytes that came from fast-forwarded (forced) tokens
        self.value = b""  # the extractive value being written
        # Values already in each open list of extractive strings, by the list's frames
        # (replaced, never changed in place: checks run on shallow copies of this state).
        self.items: dict[tuple, frozenset[bytes]] = {}
        self._content = 0  # value bytes fed so far
        self._checked: dict[tuple, bool] = {}

    # --- the mask ---------------------------------------------------------------------------

    def restrict(self, bitmask: torch.Tensor) -> None:
        """Narrow, in place, the grammar's token bitmask of this step ((1, W) int32, bit t of
        word t // 32 set: token t allowed) to the tokens that keep every extractive value a
        span of the source. Only W-word operations: no pass over the vocabulary."""
        words = bitmask.numpy()[0].view(np.uint32)
        if self.states is None:
            signature = self.tracker.signature()
            suspects = self.plan.suspects(signature)
            if suspects:
                bad = [t for t in suspects if not self._token_ok_from(signature, t)]
                if bad:
                    saved = words.copy()
                    np.bitwise_and.at(words, *_bits(bad, invert=True))
                    if not words.any():
                        words[:] = saved
                        self.relaxed += 1
            return
        limit = self.field.max_chars
        frames = self.tracker.frames
        taken = self.items.get(frames, frozenset()) if frames and frames[-1] is _ARRAY \
            else frozenset()
        if self.at_start:
            mask, self.after, deferred = self.source.start(limit, len(words))
            repeats = [t for value in taken for t, _ in self.plan.index.quoted.get(value, ())]
        else:
            found, self.after, deferred, repeats = self.source.explore(
                self.states, limit, written=self.value, taken=taken)
            mask = word_mask(found, len(words))
        if deferred:
            after_close = (_AFTER, frames, b"", False)
            extra = [t for t, rest in deferred
                     if not self.plan.touches(after_close, rest) or self._token_ok(t)]
            mask = mask | word_mask(extra, len(words))
        combined = words & mask
        if repeats:  # an item already in this list only where nothing else may come
            fresh = combined & ~word_mask(repeats, len(words))
            combined = fresh if fresh.any() else combined
        if not combined.any():
            self.relaxed += 1  # a dead end the lookahead missed: the grammar alone decides
            return
        words[:] = combined

    def closing_token(self, logits: torch.Tensor) -> int | None:
        """In closing mode inside a value that may not end yet: the allowed token that ends
        it soonest (one after which it may end, else the one writing the most bytes)."""
        if self.states is None or not self.after:
            return None
        texts = list(self.after)
        ids = torch.tensor([self.plan.index.plain[t][0] for t in texts])
        values = logits[ids]
        limit = self.field.max_chars
        best, best_key = None, None
        for text, token, value in zip(texts, ids.tolist(), values.tolist()):
            if value == float("-inf"):
                continue
            ends = any(self.source.can_close(s, limit) for s in self.after[text])
            key = (ends, 0 if ends else len(text), value)
            if best_key is None or key > best_key:
                best, best_key = token, key
        return best

    # --- accepting tokens -------------------------------------------------------------------

    def accept(self, token: int, *, forced: bool = False) -> None:
        """Advance past a token the grammar accepted."""
        data = self.plan.index.token_bytes[token] if token < len(self.plan.index.token_bytes) \
            else b""
        if self.states is not None and data in self.after and b'"' not in data:
            self.states, self.at_start = self.after[data], False
            self.value += data
            self.forced_text += len(data) if forced else 0
            return
        before = self._content
        if not self._feed(data):
            self.relaxed += 1
        if forced:
            self.forced_text += self._content - before

    def _token_ok(self, token: int) -> bool:
        """Whether the token keeps every extractive value it writes a span (on a copy)."""
        probe = CopyState.__new__(CopyState)
        probe.__dict__.update(self.__dict__)
        probe.tracker = self.tracker.copy()
        return probe._feed(self.plan.index.token_bytes[token], stop_early=True)

    def _token_ok_from(self, signature: tuple, token: int) -> bool:
        key = (signature, token)
        if key not in self._checked:
            self._checked[key] = self._token_ok(token)
        return self._checked[key]

    def _feed(self, data: bytes, *, stop_early: bool = False) -> bool:
        """Feed a token's bytes; False if some value left the source (it is then followed
        unconstrained to its end)."""
        ok = True
        position = 0
        while position < len(data):
            if self.states is None:
                opened = self.tracker.step(data[position])
                position += 1
                if opened:
                    self._open(self.plan.field_at(self.tracker.frames))
                elif self.tracker.mode == _ARR_FIRST and self.tracker.frames in self.items:
                    self.items = {k: v for k, v in self.items.items()  # a new list
                                  if k != self.tracker.frames}
                continue
            quote = data.find(b'"', position)
            end = len(data) if quote < 0 else quote
            if end > position:
                text = data[position:end]
                self._content += len(text)
                self.value += text
                limit = self.field.max_chars
                first = self.source.first(limit)[1] if self.at_start else {}
                if text in first:
                    self.states = first[text]
                else:
                    self.states = self.source.advance(self.states, text, limit)
                self.at_start = False
                if not self.states:
                    ok = False
                    if stop_early:
                        return False
                    self.states = None
                    for byte in text:  # the tracker follows the rest of this value itself
                        self.tracker.step(byte)
                    position = end
                    continue
            if quote < 0:
                break
            if not any(self.source.can_close(s, self.field.max_chars) for s in self.states):
                ok = False
                if stop_early:
                    return False
            frames = self.tracker.frames
            if frames and frames[-1] is _ARRAY:
                self.items = {**self.items, frames: self.items.get(frames, frozenset())
                              | {self.value}}
            self.states = None
            self.tracker.step(_QUOTE)
            position = quote + 1
        return ok

    def _open(self, field: ExtractiveField | None) -> None:
        if field is None:
            return
        self.field = field
        self.source = self.plan.source(self.text, field.ignore_case)
        self.states = self.source.start_states()
        self.at_start = True
        self.value = b""
