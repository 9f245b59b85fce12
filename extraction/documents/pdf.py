"""PDF text for extraction: PDFium's characters (pypdfium2) put back into reading order.

PDFium was chosen by measurement (bench/bench_pdf.py): the lowest character
error rate of pypdf, pypdfium2, pdfplumber and pdfminer.six on formula-rich papers, and 10-50x
their speed. Its own text is close but not enough for scientific papers, so each character's
font size and position are read and this module adds:

- sub- and superscripts inline as plain characters ("Nd2−xCexCuO4", "Eu3+", "cm−1"), the
  form of the NERRE annotations, the HTML loader and the models' training data; only a
  superscript right after a digit becomes Unicode ("10¹⁸", "10⁻³"), where plain digits would
  read as another number. Grounding equates ¹⁸ and 18 (NFKC).
- minus signs as printed (U+2212 stays; grounding equates it with '-');
- ligatures (ﬁ, ﬂ, ﬀ, ﬃ, ﬄ) expanded;
- two-column reading order from geometry, whatever order the content stream has;
- running headers and footers (the same line, page numbers aside, at the top or bottom of
  most pages) dropped;
- end-of-line hyphenation joined ("dop-" + "ing" -> "doping"), real hyphens kept
  ("Al-" + "doped" -> "Al-doped"), decided from the words of the document itself.

Lines stay lines; a blank line separates paragraphs (a vertical gap clearly above the line
pitch) and pages.
"""

from __future__ import annotations

import ctypes
import re
import statistics
from collections import Counter
import threading
from dataclasses import dataclass
from pathlib import Path

from extraction.errors import DocumentError

# A character this much smaller than its line's body text, and off its baseline by more than
# MIN_SCRIPT_SHIFT of the body size, is a sub- or superscript.
SCRIPT_SIZE = 0.85
MIN_SCRIPT_SHIFT = 0.1
# A space that PDFium generated between glyphs closer than this (in body sizes) is dropped.
TIGHT_GAP = 0.12
# A gap this wide (in font sizes) between glyphs is a space where PDFium wrote none.
SPACE_GAP = 0.25  # measured: 0.10-0.17 inside "H2,", "g−1"; a word space 0.33+
# A horizontal gap wider than this many body sizes splits a line (two columns side by side).
COLUMN_GAP = 1.2
# Baseline distance above this multiple of the usual line pitch starts a new paragraph.
PARAGRAPH_GAP = 1.45
# Running headers/footers: among the first/last RUNNING_LINES lines of a page, within this
# share of the page height from its edge, on at least RUNNING_SHARE of the pages (and two).
RUNNING_BAND = 0.12
RUNNING_LINES = 2
RUNNING_SHARE = 0.5

_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi",
                            "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"})
_SUPERSCRIPTS = str.maketrans("0123456789+-\u2212=()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ⁿ")
_CONTROL = re.compile(r"[\x00-\x01\x03-\x08\x0b-\x1f\x7f\ufeff\uffff]")
# PDFium writes U+FFFE (\x02 one character at a time) for a hyphen it takes for a line break.
_HYPHENS = "-\ufffe\x02\xad\u2010"
# Element symbols: "Al-" + "doped" keeps its hyphen, "Hy-" + "drothermal" loses it.
_ELEMENTS = frozenset("""H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co
Ni Cu Zn Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd
Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np
Pu Am Cm Bk Cf Es Fm Md No Lr""".split())
# Second halves of hyphenated compounds common in materials papers ("Ce-|doped", "n-|type").
_COMPOUND_TAILS = frozenset("""doped codoped based type like free rich poor induced related
dependent independent state sensitized assisted derived coated modified containing shaped sized
scale layer layered phase order ordered range field charge temperature energy resolved ray
dimensional step pot situ art term known time""".split())
_WORD = re.compile(r"[^\W\d_]+")
# PDFium is not thread-safe (pypdfium2's docs); the UI serves sessions from threads.
_PDFIUM_LOCK = threading.Lock()


@dataclass
class _Char:
    text: str
    x0: float
    x1: float
    y: float  # baseline (PDF coordinates: up is larger)
    size: float


@dataclass
class Line:
    """One line of one column: its text and where it sits on the page."""

    text: str
    x0: float
    x1: float
    y: float  # baseline of its body text
    size: float


def read_pdf_pages(path: Path, raw: bytes) -> list[str]:
    """The text of each page of a PDF, in reading order and cleaned (see the module doc)."""
    with _PDFIUM_LOCK:
        pages = _read_lines(path, raw)
    ordered = [reading_order(lines, width) for lines, width, _ in pages]
    kept = drop_running_lines(ordered, [height for _, _, height in pages])
    return join_hyphenation([page_lines_text(lines) for lines in kept])


def _read_lines(path: Path, raw: bytes) -> list[tuple[list[Line], float, float]]:
    """Each page's lines (stream order) with the page's width and height."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise DocumentError(path, "PDF is password-protected", hint="remove the password "
                                "first, e.g. 'qpdf --password=... --decrypt in.pdf out.pdf'") \
                from exc
        if code == pdfium.raw.FPDF_ERR_SECURITY:
            raise DocumentError(path, f"PDF is encrypted and cannot be opened ({exc})",
                                hint="run 'qpdf --decrypt in.pdf out.pdf' first") from exc
        raise DocumentError(path, f"corrupt or truncated PDF ({exc})",
                            hint="download the file again, or repair it with "
                                 "'qpdf in.pdf out.pdf'") from exc
    try:
        pages = []
        for page in pdf:
            try:
                textpage = page.get_textpage()
                pages.append((page_lines(textpage), *page.get_size()))
                textpage.close()
            finally:
                page.close()
    except pdfium.PdfiumError as exc:
        raise DocumentError(path, f"corrupt or truncated PDF ({exc})",
                            hint="download the file again, or repair it with "
                                 "'qpdf in.pdf out.pdf'") from exc
    finally:
        pdf.close()
    return pages


# --- characters and lines ------------------------------------------------------------------------

def page_lines(textpage: object) -> list[Line]:
    """PDFium's lines, in content-stream order, split at column-wide gaps, with scripts
    resolved (see ``_line``)."""
    import pypdfium2.raw as pdfium_c

    handle = textpage.raw  # type: ignore[attr-defined]
    count = pdfium_c.FPDFText_CountChars(handle)
    text = textpage.get_text_range() if count else ""  # type: ignore[attr-defined]
    if len(text) != count:  # characters outside the BMP: one call per character instead
        text = "".join(chr(pdfium_c.FPDFText_GetUnicode(handle, i) or 0xFFFD)
                       for i in range(count))
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    origin_x, origin_y = ctypes.c_double(), ctypes.c_double()
    lines: list[Line] = []
    current: list[_Char] = []
    broken = False  # PDFium ended a line here: confirmed by the next glyph, or not
    for i, char in enumerate(text):
        if char in "\r\n":
            broken = True
            continue
        if char == " " and pdfium_c.FPDFText_IsGenerated(handle, i):
            current.append(_Char(" ", 0.0, 0.0, 0.0, 0.0))  # see _drop_tight_spaces
            continue
        pdfium_c.FPDFText_GetCharBox(handle, i, left, right, bottom, top)
        pdfium_c.FPDFText_GetCharOrigin(handle, i, origin_x, origin_y)
        size = pdfium_c.FPDFText_GetFontSize(handle, i)
        glyph = _Char(char, left.value, right.value, origin_y.value, size)
        if broken and not _continues(current, glyph) or _jumps(current, glyph):
            lines += _split_line(current)
            current = []
        elif broken and current[-1].text != " " and \
                glyph.x0 - current[-1].x1 > SPACE_GAP * max(glyph.size, current[-1].size):
            current.append(_Char(" ", 0.0, 0.0, 0.0, 0.0))  # "KH2PO4" | "(KDP)": no space
        broken = False
        current.append(glyph)
    return lines + _split_line(current)


def _jumps(chars: list[_Char], glyph: _Char) -> bool:
    """True when a glyph starts another line without PDFium saying so (it writes none after
    a hyphen it takes for a line break): back to the left, or a line's height away."""
    last = next((c for c in reversed(chars) if not c.text.isspace()), None)
    return last is not None and (glyph.x1 < last.x0 - last.size
                                 or abs(glyph.y - last.y) > max(glyph.size, last.size))


def _continues(chars: list[_Char], glyph: _Char) -> bool:
    """True when PDFium broke a line where the text goes on along the same baseline: it
    does so after a sub- or superscript ("YVO4" | ":Eu3+")."""
    glyphs = [c for c in chars if not c.text.isspace()]
    if not glyphs:
        return False
    size = max(c.size for c in glyphs)
    baseline = statistics.median(c.y for c in glyphs if c.size >= SCRIPT_SIZE * size)
    gap = glyph.x0 - glyphs[-1].x1
    return -0.2 * size < gap < COLUMN_GAP * size and abs(glyph.y - baseline) < 0.6 * size


def _split_line(chars: list[_Char]) -> list[Line]:
    """Cut where the next glyph starts far right of the previous one or jumps back left: two
    columns that PDFium read as one line."""
    glyphs = [c for c in chars if not c.text.isspace()]
    if not glyphs:
        return []
    size = _body_size(glyphs)
    chars = _drop_tight_spaces(chars, size)
    pieces: list[list[_Char]] = [[]]
    previous: _Char | None = None
    for char in chars:
        if not char.text.isspace():
            if previous is not None and (char.x0 - previous.x1 > COLUMN_GAP * size
                                         or char.x1 < previous.x0 - size):
                pieces.append([])
            previous = char
        pieces[-1].append(char)
    return [line for piece in pieces if (line := _line(piece)) is not None]


def _drop_tight_spaces(chars: list[_Char], size: float) -> list[_Char]:
    """Drop spaces PDFium made up (size 0 here) where the glyphs around them touch: it puts
    one after most sub- and superscripts ("H2 ,", "ZnTiO3 .")."""
    kept: list[_Char] = []
    for i, char in enumerate(chars):
        if char.text == " " and char.size == 0.0:
            before = next((c for c in reversed(kept) if not c.text.isspace()), None)
            after = next((c for c in chars[i + 1:] if not c.text.isspace()), None)
            if before is None or after is None or after.x0 - before.x1 < TIGHT_GAP * size:
                continue
        kept.append(char)
    return kept


def _body_size(glyphs: list[_Char]) -> float:
    """The largest font size that a quarter of the glyphs have: not the most common one,
    which in "La1.85Sr0.15Cu1−yCoyO4−δ" is the subscripts'."""
    sizes = sorted((c.size for c in glyphs), reverse=True)
    return sizes[len(sizes) // 4] or 1.0


def _line(chars: list[_Char]) -> Line | None:
    glyphs = [c for c in chars if not c.text.isspace()]
    if not glyphs:
        return None
    size = _body_size(glyphs)
    body = [c for c in glyphs if c.size >= SCRIPT_SIZE * size] or glyphs
    baseline = statistics.median(c.y for c in body)
    raised = [not c.text.isspace() and c.size < SCRIPT_SIZE * size
              and (c.y - baseline) / size > MIN_SCRIPT_SHIFT for c in chars]
    out: list[str] = []
    i = 0
    while i < len(chars):
        if not raised[i]:
            out.append(chars[i].text)
            i += 1
            continue
        end = i
        while end < len(chars) and raised[end]:
            end += 1
        run = "".join(c.text for c in chars[i:end])
        # After a digit, a plain superscript would make another number: 10 + 18 -> "1018".
        out.append(_superscript(run) if out and out[-1][-1:].isdigit() else run)
        i = end
    text = "".join(out).strip()
    return Line(text, min(c.x0 for c in glyphs), max(c.x1 for c in glyphs), baseline, size)


def _superscript(text: str) -> str:
    """Unicode superscripts where every character has one, else the plain text."""
    mapped = text.translate(_SUPERSCRIPTS)
    return mapped if all(ch in "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ" for ch in mapped) else text


# --- reading order, running lines ------------------------------------------------------------------

def reading_order(lines: list[Line], width: float) -> list[Line]:
    """Lines in reading order. Where the page has two columns (a gutter that few lines
    cross, with lines on both sides), lines are read in bands: each band between lines that
    span the gutter is read left column first, top to bottom. One column: stream order."""
    gutter = _gutter(lines, width)
    if gutter is None:
        return lines
    ordered: list[Line] = []
    left: list[Line] = []
    right: list[Line] = []
    for line in _top_down(lines):
        if line.x1 <= gutter:
            left.append(line)
        elif line.x0 >= gutter:
            right.append(line)
        else:
            ordered += left + right + [line]
            left, right = [], []
    return ordered + left + right


def _top_down(lines: list[Line]) -> list[Line]:
    """Top to bottom; pieces of one line (a justified line cut at a wide gap) left to right."""
    ordered = sorted(lines, key=lambda ln: -ln.y)
    rows: list[list[Line]] = []
    for line in ordered:
        if rows and _same_row(rows[-1][0], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda ln: ln.x0)]


def _same_row(a: Line, b: Line) -> bool:
    return abs(a.y - b.y) < 0.3 * min(a.size, b.size)


def _gutter(lines: list[Line], width: float) -> float | None:
    """The x of a gap between two columns in the middle of the page, or None.

    Candidates run across the middle 40% of the page; one qualifies with lines wholly on
    both sides (a last column may hold a single line) and fewer lines across it (a title, a
    footer) than beside it: on a one-column page nearly every line crosses the middle.
    Of the qualifying ones, the middle of those that the fewest lines cross."""
    steps = 80
    scored: list[tuple[int, float]] = []
    for step in range(steps + 1):
        x = width * (0.3 + 0.4 * step / steps)
        n_left = sum(1 for ln in lines if ln.x1 <= x)
        n_right = sum(1 for ln in lines if ln.x0 >= x)
        crossing = len(lines) - n_left - n_right
        if n_left >= 2 and n_right >= 1 and crossing < n_left + n_right:
            scored.append((crossing, x))
    if not scored:
        return None
    fewest = min(crossing for crossing, _ in scored)
    return statistics.median(x for crossing, x in scored if crossing == fewest)


def _running_key(line: Line) -> str:
    return re.sub(r"\d+", "#", " ".join(line.text.lower().split()))


def drop_running_lines(pages: list[list[Line]], heights: list[float]) -> list[list[Line]]:
    """Remove headers and footers: lines near the top or bottom edge whose text, digits
    aside, recurs on at least RUNNING_SHARE of the pages (and on two or more)."""
    if len(pages) < 2:
        return pages
    candidates: list[set[int]] = []
    seen: Counter[str] = Counter()
    for lines, height in zip(pages, heights):
        by_height = sorted(range(len(lines)), key=lambda i: -lines[i].y)
        edge = {i for i in by_height[:RUNNING_LINES] if lines[i].y > (1 - RUNNING_BAND) * height}
        edge |= {i for i in by_height[-RUNNING_LINES:] if lines[i].y < RUNNING_BAND * height}
        candidates.append(edge)
        seen.update({_running_key(lines[i]) for i in edge})
    needed = max(2, RUNNING_SHARE * len(pages))
    return [[ln for i, ln in enumerate(lines)
             if not (i in edge and seen[_running_key(ln)] >= needed)]
            for lines, edge in zip(pages, candidates)]


# --- text ----------------------------------------------------------------------------------------

def page_lines_text(lines: list[Line]) -> str:
    """Lines joined by newlines, with a blank line where the vertical gap is a paragraph's."""
    steps = [a.y - b.y for a, b in zip(lines, lines[1:]) if 0 < a.y - b.y < 3 * a.size]
    pitch = statistics.median(steps) if steps else None
    parts: list[str] = []
    for previous, line in zip([None, *lines], lines):
        if previous is not None and _same_row(previous, line) and previous.x1 < line.x0:
            # Pieces of one line: "the Sr2CeO4" + ":Eu" touch, "Cu1−yCoyO4−δ" + "poly..." not.
            tight = line.x0 - previous.x1 < SPACE_GAP * max(previous.size, line.size)
            parts.append("" if tight else " ")
        elif previous is not None:
            gap = previous.y - line.y
            parts.append("\n\n" if pitch and PARAGRAPH_GAP * pitch < gap < 10 * pitch
                         else "\n")
        parts.append(clean_text(line.text))
    return "".join(parts)


def clean_text(text: str) -> str:
    """Ligatures expanded, control characters dropped (PDFium's \\x02 hyphen kept for
    ``join_hyphenation``)."""
    return _CONTROL.sub("", text.translate(_LIGATURES)).rstrip()


def join_hyphenation(pages: list[str]) -> list[str]:
    """Undo line-end hyphenation within each page ("dop-\\ning" -> "doping"); keep real
    hyphens ("Al-\\ndoped" -> "Al-doped") and slashes ("TiO2/\\ngraphene"). The rest of
    the broken word moves up a line."""
    vocabulary, compounds = _vocabulary(pages)
    out = []
    for page in pages:
        lines: list[str | None] = list(page.split("\n"))
        for i in range(len(lines) - 1):
            line, following = lines[i], lines[i + 1]
            if not line or line[-1] not in _HYPHENS + "/" or not following:
                continue  # a hyphen before a blank line or a page end stays
            tail, _, rest = following.partition(" ")
            if line[-1] == "/":  # "polypyrrole/" + "dodecylbenzenesulphonate"
                lines[i] = line + tail
            else:
                keep = _keep_hyphen(line[:-1], tail, vocabulary, compounds)
                lines[i] = line[:-1] + ("-" if keep else "") + tail
            lines[i + 1] = rest.lstrip() or None  # None: emptied, not a paragraph break
        text = "\n".join(line for line in lines if line is not None)
        out.append(text.replace("\x02", "-").replace("\xad", ""))
    return out


def _vocabulary(pages: list[str]) -> tuple[set[str], set[str]]:
    """Lower-case words and hyphenated compounds of the document, leaving out the pieces
    around line-end hyphens (which are what is being decided)."""
    words: set[str] = set()
    compounds: set[str] = set()
    for page in pages:
        text = re.sub(rf"\S*[{_HYPHENS}]\n\s*\S+", " ", page)
        words.update(w.lower() for w in _WORD.findall(text))
        compounds.update(c.lower() for c in re.findall(r"[^\W\d_]+-[^\W\d_]+", text))
    return words, compounds


def _keep_hyphen(before: str, tail: str, words: set[str], compounds: set[str]) -> bool:
    head_match = re.search(r"[^\W\d_]+$", before)
    tail_match = re.match(r"[^\W\d_]+", tail)
    if head_match is None or tail_match is None or not tail[0].islower():
        return True  # "(002)-textured", "Fe-N", "group-13"
    head, rest = head_match.group(), tail_match.group()
    joined = (head + rest).lower()
    if joined in words:
        return False
    if f"{head}-{rest}".lower() in compounds:
        return True
    if head in _ELEMENTS or any(ch.isupper() for ch in head[1:]):
        return True  # "Al-doped", "ZnO-based"
    if len(head) < 2 or len(rest) < 3 or rest.lower() in _COMPOUND_TAILS:
        return True  # TeX leaves at least two letters before and three after a break
    return len(head) >= 3 and len(rest) >= 4 and head.lower() in words \
        and rest.lower() in words
