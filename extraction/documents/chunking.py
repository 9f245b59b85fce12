"""Split a Document into overlapping chunks for retrieval, and text into sentence spans.

Every chunk and span is an exact slice of ``document.text``: evidence offsets shown to the
user and used in evaluation come from here, so "roughly the same text" is not good enough.
"""

from __future__ import annotations

import re

from extraction.errors import ConfigError
from extraction.types import Chunk, Document

# Paragraphs, then lines, then sentences, then clauses, then words. Separators stay at the
# end of the piece before them ("end"), so a chunk never starts with ". " or "; ".
SEPARATORS: list[str] = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


def split(document: Document, *, chunk_size: int = 1000, chunk_overlap: int = 150) -> list[Chunk]:
    """Chunks of at most ``chunk_size`` characters that overlap by at most ``chunk_overlap``.

    Each chunk is ``document.text[start:end]`` where the splitter cut it, even when the same
    words occur elsewhere in the text (only a chunk made of nothing but separator
    punctuation, such as ", ;", is placed by a heuristic)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    _check_sizes(chunk_size, chunk_overlap)
    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS, keep_separator="end", chunk_size=chunk_size,
        chunk_overlap=chunk_overlap, strip_whitespace=True)
    text = document.text
    # The splitter returns strings, not offsets, and "TiO2 films" may occur many times, so
    # split a stand-in text instead whose pieces each say where they come from.
    marked = _stand_in(text)
    chunks: list[Chunk] = []
    anchor = prev_end = 0  # anchor: a start known exactly; later chunks never start before it
    for piece in splitter.split_text(marked):
        if piece.isspace():
            continue  # the splitter can emit one when chunk_size is a few characters
        start = _locate_coded(marked, piece, anchor)
        if start is None:
            lowest = max(anchor, prev_end - chunk_overlap)
            start = _locate_uncoded(marked, piece, lowest, prev_end)
        else:
            anchor = start
        end = start + len(piece)
        if chunks and end <= prev_end:
            continue  # after a run of whitespace the splitter can repeat part of a chunk
        if chunks and start == chunks[-1].start:
            chunks.pop()  # ... or repeat it with more text appended: keep the longer one
        chunks.append(Chunk(text=text[start:end], start=start, end=end,
                            page=document.page_of(start), doc_sha256=document.sha256,
                            source=document.source, index=len(chunks)))
        prev_end = end
    return chunks


# The splitter only compares separators and lengths, so every character outside whitespace
# and separator matches may be swapped for one that codes its position without moving a cut.
_SEPARATOR_RE = re.compile("|".join(re.escape(sep) for sep in SEPARATORS if sep.strip()))
_NON_SPACE = re.compile(r"\S")
_PLANE = 65534  # usable code points in each of the two supplementary private-use planes
_PLANES = (0xF0000, 0x100000)
_CYCLE = 2 * _PLANE


def _stand_in(text: str) -> str:
    """``text`` with each character the splitter does not look at replaced by a code for
    its position (modulo _CYCLE), so that a chunk of it tells where it starts."""
    chars = [ch if ch.isspace() else _code(i) for i, ch in enumerate(text)]
    for match in _SEPARATOR_RE.finditer(text):
        chars[match.start():match.end()] = match.group()
    return "".join(chars)


def _code(position: int) -> str:
    n = position % _CYCLE
    return chr(_PLANES[n // _PLANE] + n % _PLANE)


def _decode(ch: str) -> int | None:
    cp = ord(ch)
    for plane, base in enumerate(_PLANES):
        if base <= cp < base + _PLANE:
            return plane * _PLANE + cp - base
    return None


def _locate_coded(marked: str, piece: str, anchor: int) -> int | None:
    """Exact start of a piece that holds a position-coded character (None if it has none)."""
    for k, ch in enumerate(piece):
        code = _decode(ch)
        if code is None:
            continue
        # The code fixes the position modulo _CYCLE; only runs of whitespace and punctuation
        # longer than _CYCLE characters make the first guess wrong.
        start = anchor + (code - anchor - k) % _CYCLE
        while start + len(piece) <= len(marked):
            if marked.startswith(piece, start):
                return start
            start += _CYCLE
        raise _not_a_slice(piece)
    return None


def _locate_uncoded(marked: str, piece: str, lowest: int, prev_end: int) -> int:
    """Start of a piece made only of separator punctuation such as ", ;" (tiny chunk sizes),
    whose copies are identical, so any copy gives the same text. The splitter skips only
    whitespace, so prefer a copy by the next non-space character after the previous chunk
    that reaches past it, then one inside that chunk, then any later one."""
    gap = _NON_SPACE.search(marked, prev_end)
    latest = gap.start() if gap else len(marked)
    inside = None
    start = marked.find(piece, lowest)
    while 0 <= start <= latest:
        if start + len(piece) > prev_end:
            return start
        inside = start if inside is None else inside
        start = marked.find(piece, start + 1)
    if inside is not None:
        return inside
    start = marked.find(piece, lowest)
    start = start if start >= 0 else marked.find(piece)
    if start < 0:
        raise _not_a_slice(piece)
    return start


def _not_a_slice(piece: str) -> RuntimeError:
    # A bug, not a user error: a langchain release broke "chunks are slices of the input".
    return RuntimeError(f"splitter returned a chunk that is not in the text: {piece[:40]!r}")


def _check_sizes(chunk_size: int, chunk_overlap: int) -> None:
    for name, value in (("chunk_size", chunk_size), ("chunk_overlap", chunk_overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    if chunk_size <= 0:
        raise ConfigError(f"chunk_size must be positive, got {chunk_size}",
                          hint="use a few hundred to a few thousand characters, e.g. 1000")
    if chunk_overlap < 0:
        raise ConfigError(f"chunk_overlap must be >= 0, got {chunk_overlap}",
                          hint="use 0 for no overlap")
    if chunk_overlap >= chunk_size:
        raise ConfigError(f"chunk_overlap ({chunk_overlap}) must be smaller than "
                          f"chunk_size ({chunk_size})",
                          hint="an overlap of 10-20% of chunk_size is typical")


# Words whose trailing period does not end a sentence ("Fig. 2", "et al. (2019)").
# Units are not here on purpose: "... a gap of 5 nm. The" ends a sentence.
ABBREVIATIONS: frozenset[str] = frozenset(
    ["e.g", "i.e", "fig", "figs", "eq", "eqs", "ref", "refs", "al", "vs", "cf", "ca", "approx", "resp", "no", "nos", "vol", "sec", "ch", "tab", "dr", "prof", "mr", "ms"])
# Element symbols as written that lower-case to an abbreviation.
ELEMENT_LOOKALIKES = frozenset({"Al", "Ca", "Cf", "No"})
# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by whitespace and a
# character that is not a lowercase ASCII letter: "0.5", "Ca2+.H2O" and "e.g. the" never
# match, "Ca2+. The" does. A blank line also ends one (a title without a full stop).
_END = re.compile(r"[.!?][\"')\]]*(?=\s+[^a-z\s])|\n[ \t]*\n")


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``text``, without surrounding whitespace.

    A single newline does not end a sentence: PDF text breaks lines mid-sentence."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _END.finditer(text):
        if match.group()[0] == "." and _is_abbreviation(text, match.start()):
            continue
        end = match.start() if match.group()[0] == "\n" else match.end()
        _add_span(text, start, end, spans)
        start = match.end()
    _add_span(text, start, len(text), spans)
    return spans


def _is_abbreviation(text: str, period: int) -> bool:
    # A short window keeps this O(1): every abbreviation is shorter than 10 characters.
    window = text[max(0, period - 10):period]
    word = re.search(r"[^\s(\[]*$", window).group()
    if word in ELEMENT_LOOKALIKES:  # "doped with Al." ends a sentence; "et al." does not
        return False
    return word.lower() in ABBREVIATIONS


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    """Append text[start:end] with whitespace trimmed, if anything is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))
