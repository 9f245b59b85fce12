"""Write the bundled sample documents (data/samples/) from NERRE abstracts (MIT licence).

Run from the repo root: python scripts/make_samples.py  (needs fpdf2 for the PDF sample)
"""

from __future__ import annotations

import html
import json
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


def write_pdf(path: Path, pages: list[str]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text.encode("latin-1", "replace").decode("latin-1"))
    pdf.output(str(path))


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
    pages = [f"{a['title']}\n\n{a['abstract']}" for a in doping[1:4]]
    write_pdf(OUT / "doping_paper.pdf", pages)
    print(sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
