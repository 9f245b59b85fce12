"""The vocabulary as byte strings, indexed so that a source text can be walked against it
(the extractive constraint looks up the tokens that continue a copy; it never scans the
vocabulary). Built once per tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenIndex:
    """The vocabulary as byte strings, indexed for walking a source text."""

    token_bytes: tuple[bytes, ...]
    plain: dict[bytes, tuple[int, ...]]  # tokens without a quote, by their bytes
    quoted: dict[bytes, tuple[tuple[int, bytes], ...]]  # by bytes before the first quote
    prefixes: frozenset[bytes]  # proper prefixes of plain tokens and of quoted heads
    tailed: tuple[int, ...]  # tokens with bytes after a quote (may open a value with text)


_INDEXES: dict[int, tuple[Any, TokenIndex]] = {}  # the info is kept so its id stays its own


def token_index(info: Any) -> TokenIndex:
    """The index of an xgrammar ``TokenizerInfo`` (built once per tokenizer)."""
    key = id(info)
    if key not in _INDEXES:
        _INDEXES[key] = (info, index_vocabulary([bytes(b) for b in info.decoded_vocab]))
    return _INDEXES[key][1]


def index_vocabulary(vocab: list[bytes]) -> TokenIndex:
    """The index of a vocabulary given as each token's bytes (position = token id)."""
    plain: dict[bytes, list[int]] = {}
    quoted: dict[bytes, list[tuple[int, bytes]]] = {}
    prefixes: set[bytes] = set()
    tailed = []
    for token, data in enumerate(vocab):
        if not data:
            continue
        quote = data.find(b'"')
        head = data if quote < 0 else data[:quote]
        if quote < 0:
            plain.setdefault(data, []).append(token)
        else:
            quoted.setdefault(head, []).append((token, data[quote + 1:]))
            if quote + 1 < len(data):
                tailed.append(token)
        prefixes.update(head[:k] for k in range(1, len(head)))
    return TokenIndex(tuple(vocab), {k: tuple(v) for k, v in plain.items()},
                      {k: tuple(v) for k, v in quoted.items()}, frozenset(prefixes),
                      tuple(tailed))
