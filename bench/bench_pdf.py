"""PDF text extraction: character error rate and speed of each library on a generated corpus
(bench/pdf_corpus.py).

Usage: .venv/bin/python bench/bench_pdf.py [--out bench-results/pdf.json] [--docs 3]

CER = Levenshtein distance / source length, after collapsing whitespace runs to one space.
Prints a markdown table and writes JSON with the command that produced it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.pdf_corpus import CorpusDoc, make_corpus


# --- the benchmark -------------------------------------------------------------------------------

def squash(text: str) -> str:
    return " ".join(text.split())


def cer(extracted: str, source: str) -> float:
    """Character error rate: edit distance / source length, whitespace runs collapsed."""
    a, b = squash(extracted), squash(source)
    try:
        from rapidfuzz.distance import Levenshtein
        distance = Levenshtein.distance(a, b)
    except ImportError:
        distance = _edit_distance(a, b)
    return distance / max(1, len(b))


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _pypdf(path: Path) -> list[str]:
    from pypdf import PdfReader
    return [page.extract_text() for page in PdfReader(path).pages]


def _pypdfium2(path: Path) -> list[str]:
    import pypdfium2 as pdfium
    pdf = pdfium.PdfDocument(path)
    try:
        return [page.get_textpage().get_text_bounded() for page in pdf]
    finally:
        pdf.close()


def _pdfplumber(path: Path) -> list[str]:
    import pdfplumber
    with pdfplumber.open(path) as pdf:
        return [page.extract_text() for page in pdf.pages]


def _pdfminer(path: Path) -> list[str]:
    from pdfminer.high_level import extract_text
    return extract_text(path).split("\f")[:-1] or [""]


def _matextract(path: Path) -> list[str]:
    from extraction.documents.loading import load
    [doc] = load(path)
    return [doc.text[start:end] for start, end in doc.pages]


EXTRACTORS: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
    "pypdf": ("pypdf", _pypdf),
    "pypdfium2": ("pypdfium2", _pypdfium2),
    "pdfplumber": ("pdfplumber", _pdfplumber),
    "pdfminer.six": ("pdfminer", _pdfminer),
    "matextract": ("extraction", _matextract),
}


@dataclass
class Result:
    extractor: str
    version: str
    layout: str
    pages: int = 0
    seconds: float = 0.0
    source_chars: int = 0
    errors: int = 0
    per_doc: dict[str, float] = field(default_factory=dict)

    @property
    def cer(self) -> float:
        return self.errors / max(1, self.source_chars)


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    dist = {"pdfminer": "pdfminer.six", "extraction": "matextract"}.get(module, module)
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def run(corpus: list[CorpusDoc], names: list[str]) -> Iterator[Result]:
    import importlib

    for name in names:
        module, extract = EXTRACTORS[name]
        try:
            importlib.import_module(module)
        except ImportError:
            print(f"skipped {name}: not installed", file=sys.stderr)
            continue
        extract(corpus[0].pdf)  # warm-up: imports and caches out of the timing
        for layout in dict.fromkeys(d.layout for d in corpus):
            result = Result(name, _version(module), layout)
            for doc in (d for d in corpus if d.layout == layout):
                started = time.perf_counter()
                pages = extract(doc.pdf)
                result.seconds += time.perf_counter() - started
                result.pages += len(doc.pages)
                rate = cer("\n\n".join(pages), doc.text)
                result.per_doc[doc.name] = round(rate, 4)
                result.errors += round(rate * len(squash(doc.text)))
                result.source_chars += len(squash(doc.text))
            yield result


def table(results: list[Result]) -> str:
    rows = ["| extractor | version | layout | CER | s/page |", "|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r.extractor} | {r.version} | {r.layout} | {r.cer:.2%} | "
                    f"{r.seconds / max(1, r.pages):.4f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("bench-results/pdf-corpus"),
                        help="folder for the generated PDFs and their source texts")
    parser.add_argument("--docs", type=int, default=3, help="documents per column count")
    parser.add_argument("--extractors", nargs="+", default=list(EXTRACTORS),
                        choices=list(EXTRACTORS))
    parser.add_argument("--out", type=Path, default=Path("bench-results/pdf.json"))
    args = parser.parse_args(argv)
    corpus = make_corpus(args.corpus, docs=args.docs)
    results = list(run(corpus, args.extractors))
    command = shlex.join([".venv/bin/python", "bench/bench_pdf.py", *sys.argv[1:]])
    print(f"{len(corpus)} PDFs, {sum(len(d.pages) for d in corpus)} pages in {args.corpus}\n")
    print(table(results))
    print(f"\ncommand: {command}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": command,
        "corpus": {d.name: {"pages": len(d.pages), "source_chars": len(squash(d.text))}
                   for d in corpus},
        "results": [{**asdict(r), "cer": round(r.cer, 4)} for r in results],
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
