"""A corpus of generated scientific PDFs with their source text, for bench/bench_pdf.py,
tests/test_pdf_text.py and scripts/make_samples.py.

Written with fpdf2 and a Unicode TrueType font from NERRE doping abstracts, in one and two
columns, with what makes scientific PDFs hard: formulas with real sub/superscripts (smaller
font, shifted baseline: Nd + "2−x" lowered + Ce + "x" lowered + CuO + "4" lowered), U+2212
minus signs, fi/fl ligature glyphs, words hyphenated at line ends, justified lines drawn word
by word (no space glyphs, as TeX writes them) and a running header and footer on every page.
Next to each PDF lies its source text: what a perfect extractor returns (scripts inline as
plain characters, ligatures and hyphenation undone, header and footer dropped).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_REGULAR = FONT_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"
FONT_MISSING = (f"{FONT_REGULAR} is missing: install Debian's fonts-dejavu-core "
                "(apt-get install -y fonts-dejavu-core)")

# --- formulas as runs of (text, vpos): vpos "" (baseline), "sub" or "sup" ----------------------

Run = tuple[str, str]
MINUS = "\u2212"
_ELEMENTS = frozenset("""H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co
Ni Cu Zn Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd
Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np
Pu Am Cm Bk Cf Es Fm Md No Lr""".split())
# A count after an element or ")": 2, 0.10, x, δ, 2−x, 1−x, 3+δ (ASCII '-' becomes U+2212).
_COUNT = re.compile(r"(?:\d+(?:\.\d+)?(?:[-\u2212+][xyzδ])?|[xyzδ])")
_CHARGE = re.compile(r"\d?[+\u2212-]$")
_UNIT_POWER = re.compile(r"^(cm|nm|mm|m|s|K|g)([-\u2212]?\d)$")  # cm−1, s−1, m2
_LIGATURES = (("ffi", "\ufb03"), ("ffl", "\ufb04"), ("ff", "\ufb00"), ("fi", "\ufb01"),
              ("fl", "\ufb02"))


def formula_runs(word: str) -> list[Run] | None:
    """Runs of a formula word ("Nd2-xCexCuO4", "YVO4:Eu3+", "(ZnS)1-x"), None if it is not one.

    Counts become subscripts, a trailing charge a superscript. A word must hold a count with
    a digit, or a charge, so acronyms made of element symbols ("UV", "CF", "GaAs", "PPy")
    stay plain.
    """
    runs: list[Run] = []
    i, scripted = 0, False
    while i < len(word):
        if word[i] in "():·" or (word[i] == "," and i and word[i - 1] != ")"):
            runs.append((word[i], ""))
            i += 1
            continue
        symbol = next((s for s in (word[i:i + 2], word[i:i + 1]) if s in _ELEMENTS), None)
        if symbol is None:
            return None
        runs.append((symbol, ""))
        i += len(symbol)
        charge = _CHARGE.match(word[i:]) if word[i:i + 1] not in "(),:" else None
        if charge and i + charge.end() == len(word) and (charge.group()[0].isdigit()
                                                         or len(word) - i == 1):
            runs.append((charge.group().replace("-", MINUS), "sup"))
            return _merge(runs)
        count = _COUNT.match(word, i)
        if count:
            runs.append((count.group().replace("-", MINUS), "sub"))
            i = count.end()
            scripted = scripted or any(ch.isdigit() for ch in count.group())
        while i < len(word) and word[i] == ")":
            runs.append((")", ""))
            i += 1
            count = _COUNT.match(word, i)
            if count:
                runs.append((count.group().replace("-", MINUS), "sub"))
                i = count.end()
                scripted = scripted or any(ch.isdigit() for ch in count.group())
    return _merge(runs) if scripted else None


def _merge(runs: list[Run]) -> list[Run]:
    merged: list[Run] = []
    for text, vpos in runs:
        if merged and merged[-1][1] == vpos:
            merged[-1] = (merged[-1][0] + text, vpos)
        else:
            merged.append((text, vpos))
    return merged


def word_runs(word: str) -> list[Run]:
    """A source word as drawn: formula scripts, unit powers (cm−1), plain text otherwise;
    brackets and punctuation around it stay plain ("(YVO4:Eu3+),")."""
    lead, core, trail = re.fullmatch(r"([(\[]*)(.*?)([)\],.;:]*)", word).groups()
    power = _UNIT_POWER.match(core)
    runs = ([(power.group(1), ""), (power.group(2).replace("-", MINUS), "sup")] if power
            else formula_runs(core))
    if not runs:
        return [(word, "")]
    return _merge([(lead, "")] * bool(lead) + runs + [(trail, "")] * bool(trail))


def runs_text(runs: list[Run]) -> str:
    """The source form of runs: scripts inline as plain characters ("Nd2−xCexCuO4")."""
    return "".join(text for text, _ in runs)


def ligate(text: str) -> str:
    for plain, glyph in _LIGATURES:
        text = text.replace(plain, glyph)
    return text


# --- layout: justified lines drawn word by word, one or two columns -------------------------

@dataclass
class Paragraph:
    text: str
    style: str = "body"  # "body", "heading" (bold, in a column) or "title" (bold, full width)
    new_page: bool = False  # start it on a fresh page


@dataclass
class _Word:
    runs: list[Run]
    source: str  # what the word adds to the source text; "" for the tail of a hyphenated word


@dataclass
class Layout:
    """Geometry in points on an A4 page (595 x 842)."""

    columns: int = 1
    size: float = 10.0  # body font size
    leading: float = 13.0  # baseline to baseline
    margin: float = 56.0
    gutter: float = 20.0
    top: float = 80.0  # first baseline of the body
    bottom: float = 780.0  # no body baseline below this
    header: str = ""  # "{page}" is replaced by the page number
    footer: str = ""
    script_scale: float = 0.7
    sub_shift: float = 0.25  # in units of the body size, downwards
    sup_shift: float = 0.38  # upwards
    hyphenate: bool = True
    # Draw the text row by row across the columns, as some producers order their content
    # streams: an extractor that follows the stream then interleaves the columns.
    row_order: bool = False


class _Writer:
    """Places words on pages; collects, per page, the source text of what it placed."""

    def __init__(self, pdf: Any, layout: Layout) -> None:
        self.pdf, self.layout = pdf, layout
        self.pages: list[list[str]] = []  # per page: paragraphs of source text
        # Per page: (line baseline, x, y, style, size, text); drawn at the end, in reading
        # order or row by row across the columns.
        self.ops: list[list[tuple[float, float, float, str, float, str]]] = []
        self.column = 0
        self.y = 0.0
        self.column_top = 0.0
        self._new_page()

    @property
    def page_width(self) -> float:
        return self.pdf.w - 2 * self.layout.margin

    @property
    def column_width(self) -> float:
        n = self.layout.columns
        return (self.page_width - (n - 1) * self.layout.gutter) / n

    def _new_page(self) -> None:
        self.pages.append([])
        self.ops.append([])
        self.column, self.y, self.column_top = 0, self.layout.top, self.layout.top

    def finish(self) -> None:
        lay = self.layout
        for number, ops in enumerate(self.ops, start=1):
            self.pdf.add_page()
            self.pdf.set_font("DejaVu", "", 8)
            if lay.header:
                self.pdf.text(lay.margin, 40, lay.header.format(page=number))
            if lay.footer:
                text = lay.footer.format(page=number)
                self.pdf.text((self.pdf.w - self.pdf.get_string_width(text)) / 2, 815, text)
            for _, x, y, style, size, text in sorted(ops) if lay.row_order else ops:
                self.pdf.set_font("DejaVu", style, size)
                self.pdf.text(x, y, text)

    def _next_column(self) -> None:
        if self.column + 1 < self.layout.columns:
            self.column += 1
            self.y = self.column_top
        else:
            self._new_page()

    def paragraph(self, para: Paragraph) -> None:
        lay = self.layout
        bold = para.style in ("title", "heading")
        size = lay.size * (1.3 if para.style == "title" else 1.05 if bold else 1.0)
        leading = lay.leading * size / lay.size
        full = para.style == "title"
        width = self.page_width if full else self.column_width
        queue = [_Word(runs, runs_text(runs)) for runs in map(word_runs, para.text.split())]
        if para.new_page and any(self.pages[-1]):
            self._new_page()
        sources: list[str] = []
        self.pages[-1].append("")
        while queue:
            if self.y > lay.bottom:
                self._next_column()
                self.pages[-1].append("")
                sources = []
            last = self.y + leading > lay.bottom
            line = self._fill(queue, width, size, bold, hyphenate=lay.hyphenate and not last)
            x0 = lay.margin + (0 if full else self.column * (width + lay.gutter))
            self._draw(line, x0, width, size, bold, justify=bool(queue))
            sources += [w.source for w in line if w.source]
            self.pages[-1][-1] = " ".join(sources)
            self.y += leading
        if full:
            self.column_top = self.y + leading * 0.5
        self.y += lay.leading * 0.6

    def _width(self, runs: list[Run], size: float, bold: bool) -> float:
        total = 0.0
        for text, vpos in runs:
            self.pdf.set_font("DejaVu", "B" if bold else "",
                              size * (self.layout.script_scale if vpos else 1))
            total += self.pdf.get_string_width(ligate(text) if not vpos else text)
        return total

    def _fill(self, queue: list[_Word], width: float, size: float, bold: bool, *,
              hyphenate: bool) -> list[_Word]:
        line: list[_Word] = []
        used = 0.0
        space = size * 0.33
        while queue:
            word = queue[0]
            need = self._width(word.runs, size, bold) + (space if line else 0)
            if used + need <= width or not line:
                line.append(queue.pop(0))
                used += need
                continue
            split = self._hyphenate(word, width - used - space, size, bold) if hyphenate else None
            if split:
                line.append(split[0])
                queue[0] = split[1]
            break
        return line

    def _hyphenate(self, word: _Word, room: float, size: float,
                   bold: bool) -> tuple[_Word, _Word] | None:
        """Break after a real hyphen or a slash ("dye-|sensitized", "and/|or"), or at a
        vowel-consonant boundary with a hyphen added ("degra-|dation"); both halves at least
        three letters."""
        if len(word.runs) != 1 or word.runs[0][1]:
            return None
        text = word.runs[0][0]
        cuts = [i + 1 for i, ch in enumerate(text) if ch in "-/" and 3 <= i < len(text) - 3]
        if re.fullmatch(r"[a-z]{8,}[,.;]?", text):
            cuts += [i for i in range(3, len(text.rstrip(",.;")) - 2)
                     if text[i - 1] in "aeiou" and text[i] not in "aeiouy"]
        for cut in sorted(cuts, reverse=True):
            head = text[:cut] if text[cut - 1] in "-/" else text[:cut] + "-"
            if self._width([(head, "")], size, bold) <= room:
                return _Word([(head, "")], word.source), _Word([(text[cut:], "")], "")
        return None

    def _draw(self, line: list[_Word], x0: float, width: float, size: float, bold: bool, *,
              justify: bool) -> None:
        widths = [self._width(w.runs, size, bold) for w in line]
        gap = size * 0.33
        if justify and len(line) > 1:
            gap = (width - sum(widths)) / (len(line) - 1)
        x = x0
        lay = self.layout
        for word, word_width in zip(line, widths):
            cursor = x
            for text, vpos in word.runs:
                scaled = size * (lay.script_scale if vpos else 1)
                self.pdf.set_font("DejaVu", "B" if bold else "", scaled)
                shift = {"": 0.0, "sub": lay.sub_shift * size, "sup": -lay.sup_shift * size}[vpos]
                drawn = ligate(text) if not vpos else text
                self.ops[-1].append((self.y, cursor, self.y + shift, "B" if bold else "", scaled,
                                     drawn))
                cursor += self.pdf.get_string_width(drawn)
            x += word_width + gap


def write_pdf(path: Path, paragraphs: list[Paragraph], layout: Layout) -> list[str]:
    """Write ``paragraphs`` as a PDF; return each page's source text (paragraphs split by a
    blank line, header and footer left out)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_font("DejaVu", "", str(FONT_REGULAR))
    pdf.add_font("DejaVu", "B", str(FONT_BOLD))
    writer = _Writer(pdf, layout)
    for para in paragraphs:
        writer.paragraph(para)
    writer.finish()
    pdf.output(str(path))
    return ["\n\n".join(p for p in page if p) for page in writer.pages]


# --- the corpus --------------------------------------------------------------------------------

@dataclass
class CorpusDoc:
    name: str
    pdf: Path
    layout: str  # a key of LAYOUTS
    pages: list[str]  # source text of each page

    @property
    def text(self) -> str:
        return "\n\n".join(self.pages)


LAYOUTS = {
    "1 column": {"columns": 1},
    "2 columns": {"columns": 2},
    "2 columns, row-ordered stream": {"columns": 2, "row_order": True},
}


def corpus_abstracts(count: int) -> list[dict[str, str]]:
    """NERRE doping abstracts with at least two formulas, in a fixed order (skipping titles
    whose sub/superscript markup the export broke into newlines)."""
    from extraction.datasets.nerre import load_doping_abstracts

    chosen = []
    for item in load_doping_abstracts():
        title, abstract = item["title"].strip(), " ".join(item["abstract"].split())
        if "\n" in title or not 400 < len(abstract) < 1600:
            continue
        if sum(1 for w in abstract.split() if len(word_runs(w)) > 1) >= 2:
            chosen.append({"title": " ".join(title.split()), "abstract": abstract})
        if len(chosen) == count:
            break
    return chosen


def make_corpus(out_dir: Path, *, docs: int = 3, abstracts_per_doc: int = 6,
                layouts: tuple[str, ...] = tuple(LAYOUTS)) -> list[CorpusDoc]:
    """Write ``docs`` PDFs per layout into ``out_dir``, each with its source text (NAME.txt)
    and per-page source texts (NAME.pages.json); return them. Every PDF has two or more
    pages (a running header needs them); the first title of a two-column PDF spans both
    columns."""
    if not FONT_REGULAR.is_file():
        raise FileNotFoundError(FONT_MISSING)
    out_dir.mkdir(parents=True, exist_ok=True)
    abstracts = corpus_abstracts(docs * abstracts_per_doc)
    corpus = []
    for layout_name in layouts:
        options = LAYOUTS[layout_name]
        for d in range(docs):
            name = f"{layout_name.replace(',', '').replace(' ', '-')}-{d + 1:02d}"
            group = abstracts[d * abstracts_per_doc:(d + 1) * abstracts_per_doc]
            paragraphs = []
            for i, item in enumerate(group):
                style = "title" if i == 0 and options["columns"] > 1 else "heading"
                paragraphs += [Paragraph(item["title"], style), Paragraph(item["abstract"])]
            layout = Layout(**options, header=f"Synthetic Materials Letters 7 (2026) "
                            f"{100 + d}\u2013{104 + d} \u00b7 {name}", footer="Page {page}")
            pdf = out_dir / f"{name}.pdf"
            pages = write_pdf(pdf, paragraphs, layout)
            doc = CorpusDoc(name, pdf, layout_name, pages)
            pdf.with_suffix(".txt").write_text(doc.text)
            pdf.with_suffix(".pages.json").write_text(json.dumps(pages, ensure_ascii=False))
            corpus.append(doc)
    return corpus
