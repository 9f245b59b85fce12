"""Write the bundled sample documents (data/samples/) from NERRE abstracts (MIT licence).

Run from the repo root: python scripts/make_samples.py  (needs fpdf2 and Debian's
fonts-dejavu-core for the PDF sample)

The PDF is typeset like a paper: a Unicode TrueType font, formulas with real sub- and
superscripts and U+2212 minus signs (Nd2−xCexCuO4 as Nd, lowered "2−x", Ce, lowered "x"...),
justified lines and hyphenation, by the generator of the PDF benchmark corpus
(bench/pdf_corpus.py). fpdf2's built-in fonts are Latin-1 only and wrote "?" for every minus.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NERRE = ROOT / "data" / "nerre"
OUT = ROOT / "data" / "samples"


def doping_abstracts() -> list[dict]:
    abstracts = json.loads((NERRE / "doping/data/raw_data.json").read_text())
    return [a for a in abstracts if "doped" in a["abstract"] and 500 < len(a["abstract"]) < 1200]


def annotation_text(name: str, line: int) -> str:
    rows = (NERRE / "general_and_mofs/data" / name).read_text().splitlines()
    return json.loads(rows[line])["prompt"].removesuffix("\n\n###\n\n")


def clean_title(title: str) -> str:
    """Undo the export's line breaks around sub/superscript markup: short pieces on their own
    line belong to a formula ("Pr2−x\\n Ce\\n x\\n CuO4" -> "Pr2−xCexCuO4")."""
    pieces = re.split(r"\s*\n\s*", title.strip())
    out = pieces[0]
    for piece in pieces[1:]:
        first = piece.split()[0] if piece else ""
        glue = len(first) <= 6 and re.fullmatch(r"[\w−()]+", first)
        out += piece if glue else " " + piece
    return " ".join(out.split())


def write_pdf(path: Path, pages: list[tuple[str, str]]) -> None:
    """One abstract per page: its title as a heading, then its text."""
    sys.path.insert(0, str(ROOT))
    from bench.pdf_corpus import Layout, Paragraph
    from bench.pdf_corpus import write_pdf as typeset

    paragraphs = []
    for title, abstract in pages:
        paragraphs += [Paragraph(title, "heading", new_page=True), Paragraph(abstract)]
    typeset(path, paragraphs, Layout(size=11, leading=15, footer="{page}"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    doping = doping_abstracts()
    first = doping[0]
    (OUT / "doping_abstract.txt").write_text(f"{first['title']}\n\n{first['abstract']}\n")
    mof = annotation_text("mof_annotations.jsonl", 3)
    title, _, body = mof.partition("\n")
    (OUT / "mof_abstract.html").write_text(
        f"<html><head><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(body)}</p></body></html>\n")
    (OUT / "general_abstract.md").write_text(
        "# " + annotation_text("general_materials_information_annotations.jsonl", 5) + "\n")
    write_pdf(OUT / "doping_paper.pdf",
              [(clean_title(a["title"]), a["abstract"]) for a in doping[1:4]])
    print(sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
