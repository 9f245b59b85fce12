"""Which generated tokens spell which value of a JSON answer, and how probable they were.

A value's score is taken over its own tokens only: the characters between its quotes, not
keys, quotes, commas or brackets (those are forced by the grammar and say nothing about the
value). Token probabilities are the model's unmasked ones (``Generation.token_logprobs``):
under constrained decoding the mask decides which tokens may follow, but the probability
recorded is what the model gave the chosen token among all tokens, so a value the grammar or
the copy constraint pushed the model into scores low.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ValueScore:
    """Log-probabilities of one value's tokens: their mean, the lowest, and the first (the
    decision to write this value at all)."""

    mean: float
    low: float
    first: float
    tokens: int

    def to_dict(self) -> dict[str, float]:
        return {"mean": round(self.mean, 4), "low": round(self.low, 4),
                "first": round(self.first, 4), "tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValueScore:
        return cls(float(data["mean"]), float(data["low"]), float(data["first"]),
                   int(data["tokens"]))


def token_ends(tokenizer: Any, token_ids: Sequence[int]) -> list[int]:
    """The character offset in the decoded text where each token ends (a token holding part
    of a multi-byte character ends where the character does)."""
    ends, last = [], 0
    for position in range(len(token_ids)):
        piece = tokenizer.decode(token_ids[:position + 1], skip_special_tokens=True)
        if piece.endswith("\ufffd"):  # an incomplete character: it ends with a later token
            piece = piece[:-1]
        last = max(last, len(piece))
        ends.append(last)
    return ends


def string_value_spans(text: str) -> list[tuple[str, int, int, str]]:
    """(path, start, end, value) of every non-blank string value in a JSON text, in order;
    ``text[start:end]`` is the value as written between its quotes. Paths are those of
    ``schemas.base.string_leaves`` (``links[1].host``). A text that is not valid JSON gives
    what was read before the error."""
    found: list[tuple[str, int, int, str]] = []
    try:
        _Scanner(text, found).value(0, "")
    except (ValueError, IndexError):
        pass
    return found


def value_scores(text: str, ends: Sequence[int],
                 logprobs: Sequence[float]) -> dict[str, ValueScore]:
    """Path -> score of each string value of a decoded JSON answer (``ends`` and
    ``logprobs`` one per generated token)."""
    scores: dict[str, ValueScore] = {}
    for path, start, end, _ in string_value_spans(text):
        own = [lp for position, lp in enumerate(logprobs)
               if ends[position] > start and (position == 0 or ends[position - 1] < end)]
        if own:
            scores[path] = ValueScore(sum(own) / len(own), min(own), own[0], len(own))
    return scores


class _Scanner:
    """A small JSON reader that keeps positions (``json`` gives values, not offsets)."""

    def __init__(self, text: str, found: list[tuple[str, int, int, str]]) -> None:
        self.text, self.found = text, found

    def _skip(self, at: int) -> int:
        while at < len(self.text) and self.text[at] in " \t\r\n":
            at += 1
        return at

    def value(self, at: int, path: str) -> int:
        at = self._skip(at)
        char = self.text[at]
        if char == "{":
            return self._object(at + 1, path)
        if char == "[":
            return self._array(at + 1, path)
        if char == '"':
            end, value = self._string(at)
            if value.strip():
                self.found.append((path, at + 1, end - 1, value))
            return end
        return self._scalar(at)

    def _object(self, at: int, path: str) -> int:
        at = self._skip(at)
        if self.text[at] == "}":
            return at + 1
        while True:
            at = self._skip(at)
            if self.text[at] != '"':
                raise ValueError("key expected")
            at, key = self._string(at)
            at = self._skip(at)
            if self.text[at] != ":":
                raise ValueError("colon expected")
            at = self._skip(self.value(at + 1, f"{path}.{key}" if path else key))
            if self.text[at] == "}":
                return at + 1
            if self.text[at] != ",":
                raise ValueError("comma expected")
            at += 1

    def _array(self, at: int, path: str) -> int:
        at = self._skip(at)
        if self.text[at] == "]":
            return at + 1
        position = 0
        while True:
            at = self._skip(self.value(at, f"{path}[{position}]"))
            if self.text[at] == "]":
                return at + 1
            if self.text[at] != ",":
                raise ValueError("comma expected")
            at, position = at + 1, position + 1

    def _string(self, at: int) -> tuple[int, str]:
        """(offset after the closing quote, decoded value) of the string opening at ``at``."""
        end = at + 1
        while self.text[end] != '"':
            end += 2 if self.text[end] == "\\" else 1
        return end + 1, json.loads(self.text[at:end + 1])

    def _scalar(self, at: int) -> int:
        end = at
        while end < len(self.text) and self.text[end] not in ",]} \t\r\n":
            end += 1
        if end == at:
            raise ValueError("value expected")
        return end
