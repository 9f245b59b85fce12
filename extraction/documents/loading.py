"""Turn input files into ``Document`` objects: the one place that knows about file formats.

Every later step works on ``Document.text`` and character offsets into it, so loaders only
normalise what cannot shift meaning (line endings, whitespace between HTML blocks) and never
touch characters inside words: "Fe2O3" and "Ca2+" must survive exactly.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extraction.errors import DocumentError, UnsupportedFormatError
from extraction.types import Document, sha256_text

# Fields that hold the text of one item in a JSON collection, in order of preference.
TEXT_FIELDS: tuple[str, ...] = ("text", "abstract", "prompt")
# NERRE fine-tuning prompts end with this separator; it is not part of the abstract.
NERRE_PROMPT_END = "\n\n###\n\n"
# Above this share of non-printable characters a "text" file is treated as binary.
MAX_CONTROL_SHARE = 0.05


def load(path: str | Path) -> list[Document]:
    """Load one file: a single Document, or one per item for .json/.jsonl collections."""
    path = Path(path)
    raw = _read_bytes(path)
    return _LOADERS[path.suffix.lower()](path, raw)


def load_text(text: str, *, source: str = "<text>") -> Document:
    """Wrap in-memory text (pasted into the UI, piped to the CLI) as a Document."""
    text = _normalise_newlines(text)
    if not text.strip():
        raise DocumentError(source, "the text is empty", hint="paste or pass some text")
    return Document.from_text(text, source=source)


# --- reading and checking raw bytes ---------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DocumentError(path, "file not found",
                            hint=f"check the path (relative paths start at {Path.cwd()})")
    if path.is_dir():
        raise DocumentError(path, "is a directory, not a file",
                            hint="pass the files inside it, e.g. 'papers/*.pdf'")
    suffix = path.suffix.lower()
    if suffix not in _LOADERS:
        raise UnsupportedFormatError(path, f"unsupported file type {suffix or '(no extension)'!r}")
    try:
        raw = path.read_bytes()
    except PermissionError as exc:
        raise DocumentError(path, "permission denied",
                            hint="make the file readable (chmod u+r) or copy it") from exc
    except OSError as exc:
        raise DocumentError(path, f"cannot read file: {exc.strerror or exc}",
                            hint="check that the disk or network share is reachable") from exc
    if not raw.strip():
        problem = "file is empty" if not raw else "file holds only whitespace"
        raise DocumentError(path, problem,
                            hint="check that the file was saved or downloaded completely")
    return raw


def _looks_binary(text: str) -> bool:
    """True when decoded text is mostly control or replacement characters."""
    if "\x00" in text:
        return True
    bad = sum(1 for ch in text
              if ch == "\ufffd" or (not ch.isprintable() and ch not in "\t\n\r\f"))
    return bad > MAX_CONTROL_SHARE * len(text)


@dataclass(frozen=True)
class Decoded:
    """Text decoded from bytes, the encoding used, and how many invalid byte sequences
    became U+FFFD (only ever non-zero for UTF-8: the legacy encodings decode every byte)."""

    text: str
    encoding: str
    replaced: int = 0

    def metadata(self) -> dict[str, Any]:
        return {"encoding": self.encoding, **({"replaced": self.replaced} if self.replaced else {})}


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
# Bytes 0x80-0x9F that Windows-1252 leaves undefined; elsewhere in that range it has € ‚ „ …
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")


def _decode_text(path: Path, raw: bytes) -> Decoded:
    """UTF-8 first (with or without a BOM; UTF-16 with a BOM); then a legacy single-byte
    encoding; refusing binary files (NUL bytes, mostly control characters).

    A file with valid UTF-8 multi-byte characters and a few invalid bytes (a damaged export)
    is UTF-8 with U+FFFD for those bytes. Otherwise its non-ASCII bytes decide: isolated ones
    between ASCII ("500 \\xb0C", "M\\xfcller") are Windows-1252, or Latin-1 where no byte in
    0x80-0x9F needs cp1252; runs of them (CJK double-byte text) go to charset-normalizer.
    Not charset-normalizer for everything: on short Western scientific texts it answered
    big5 for "500 \\xb0C", iso8859_14 (° -> Ḟ) and cp1250 (Å -> Ĺ).
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                text, replaced = raw.decode(encoding), 0
            except UnicodeDecodeError:
                text = raw.decode(encoding, errors="replace")
                replaced = text.count("\ufffd")
            return _checked(path, Decoded(_normalise_newlines(text.lstrip("\ufeff")),
                                          encoding.removesuffix("-sig"), replaced))
    if b"\x00" in raw:
        raise _binary_error(path)
    text = raw.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
    multibyte = sum(1 for ch in text if ord(ch) > 0x7F) - text.count("\ufffd")
    if replaced == 0 or multibyte >= replaced:
        return _checked(path, Decoded(_normalise_newlines(text), "utf-8", replaced))
    return _checked(path, _decode_legacy(path, raw))


def _decode_legacy(path: Path, raw: bytes) -> Decoded:
    high = [i for i, byte in enumerate(raw) if byte > 0x7F]
    in_runs = sum(1 for i in high if (i > 0 and raw[i - 1] > 0x7F)
                  or (i + 1 < len(raw) and raw[i + 1] > 0x7F))
    if in_runs <= 0.2 * len(high):
        c1 = {raw[i] for i in high if raw[i] < 0xA0}
        encoding = "latin-1" if not c1 or c1 & _CP1252_UNDEFINED else "cp1252"
        return Decoded(_normalise_newlines(raw.decode(encoding)), encoding)
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        raise _binary_error(path)
    return Decoded(_normalise_newlines(str(best)), best.encoding)


def _checked(path: Path, decoded: Decoded) -> Decoded:
    if _looks_binary(decoded.text):
        raise _binary_error(path)
    return decoded


def _binary_error(path: Path) -> DocumentError:
    return DocumentError(path, "looks like a binary file, not text",
                         hint="convert it to .txt/.pdf first, or check the file extension")


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _load_plain(path: Path, raw: bytes) -> list[Document]:
    decoded = _decode_text(path, raw)
    if not decoded.text.strip():
        raise DocumentError(path, "file holds only whitespace",
                            hint="check that the file was saved completely")
    return [_single(path, raw, decoded.text, format=path.suffix.lower().lstrip("."),
                    **decoded.metadata())]


def _single(path: Path, raw: bytes, text: str, **metadata: Any) -> Document:
    return Document(text=text, source=str(path), sha256=hashlib.sha256(raw).hexdigest(),
                    pages=((0, len(text)),), metadata=metadata)


# --- HTML -----------------------------------------------------------------------------------

# <head> goes too: its <title> is kept as metadata, the rest is never article text.
_DROP_TAGS = ("script", "style", "nav", "noscript", "template", "head", "svg")
# Block elements end a paragraph (blank line) or a line. They emit markers first, so that
# nested or adjacent blocks (</tr><tr>, <div><p>) collapse into one break, not several.
_PARAGRAPH_TAGS = frozenset(["p", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "blockquote", "pre", "table", "ul", "ol", "dl", "figure", "figcaption", "caption", "main", "aside", "address"])
_LINE_TAGS = frozenset(["div", "li", "tr", "dt", "dd", "hr", "br"])
_CELL_TAGS = frozenset(("td", "th"))
_PARA, _LINE = "\ue000", "\ue001"  # private-use characters never found in real text


def _load_html(path: Path, raw: bytes) -> list[Document]:
    from bs4 import BeautifulSoup

    if b"\x00" in raw:
        raise _binary_error(path)
    # Bytes, not str, so BeautifulSoup honours <meta charset> for non-UTF-8 pages.
    soup = BeautifulSoup(raw, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    parts: list[str] = []
    _html_text(soup, parts, pre=False)
    text = _tidy_html_text("".join(parts))
    if not text:
        raise DocumentError(path, "HTML page holds no visible text",
                            hint="save the article page itself, not a redirect or login page")
    if _looks_binary(text):
        raise _binary_error(path)
    return [_single(path, raw, text, format="html", **({"title": title} if title else {}))]


def _html_text(node: Any, parts: list[str], *, pre: bool) -> None:
    """Depth-first text with newlines at block edges; inline tags (sub, sup, i) add nothing,
    so ``Fe<sub>2</sub>O<sub>3</sub>`` stays ``Fe2O3``."""
    from bs4.element import NavigableString, PreformattedString, Tag

    for child in node.children:
        if isinstance(child, PreformattedString):  # comments, doctype, CDATA
            continue
        if isinstance(child, NavigableString):
            # HTML whitespace is ASCII only: a no-break space in "110\u00a0nm" is content.
            parts.append(str(child) if pre else re.sub(r"[ \t\n\r\f]+", " ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        edge = _PARA if name in _PARAGRAPH_TAGS else _LINE if name in _LINE_TAGS else ""
        if name in ("sub", "sup"):
            if not _is_citation_marker(child):
                parts.append(child.get_text().strip())
            continue
        parts.append(edge)
        _html_text(child, parts, pre=pre or name == "pre")
        parts.append(edge or ("\t" if name in _CELL_TAGS else ""))


def _is_citation_marker(tag: Any) -> bool:
    """A <sup> that only wraps links, e.g. ``TiO<sub>2</sub><sup><a>12</a></sup>``: publisher
    HTML marks references this way, and inlining it would turn TiO2 into "TiO212"."""
    linked = "".join(a.get_text() for a in tag.find_all("a")).strip()
    return tag.name == "sup" and bool(linked) and linked == tag.get_text().strip()


def _tidy_html_text(text: str) -> str:
    def one_break(run: re.Match[str]) -> str:
        return "\n\n" if _PARA in run.group() else "\n"

    text = re.sub(f"[ \t]*[{_PARA}{_LINE}][{_PARA}{_LINE} \t\n]*", one_break, text)
    text = re.sub(r" *\n[ \t]*", "\n", text)  # no spaces at line edges (inside <pre>)
    text = re.sub(r" *\t[ \t]*", "\t", text)  # table cells: one tab between them
    text = re.sub(r"\t+\n", "\n", text)
    return re.sub(r" {2,}", " ", text).strip()


# --- PDF ------------------------------------------------------------------------------------

def _load_pdf(path: Path, raw: bytes) -> list[Document]:
    from extraction.documents.pdf import read_pdf_pages

    page_texts = read_pdf_pages(path, raw)
    if not any(t.strip() for t in page_texts):
        raise DocumentError(path, "scanned PDF without a text layer",
                            hint="run OCR first, e.g. 'ocrmypdf in.pdf out.pdf'")
    pages: list[tuple[int, int]] = []
    offset = 0
    for page_text in page_texts:
        pages.append((offset, offset + len(page_text)))
        offset += len(page_text) + 2  # the "\n\n" between pages belongs to no page
    return [Document(text="\n\n".join(page_texts), source=str(path),
                     sha256=hashlib.sha256(raw).hexdigest(), pages=tuple(pages),
                     metadata={"format": "pdf", "page_count": len(page_texts)})]


# --- JSON collections of abstracts ------------------------------------------------------------

def _load_json(path: Path, raw: bytes) -> list[Document]:
    return _documents_from_items(path, _parse_json(path, raw))


def _load_jsonl(path: Path, raw: bytes) -> list[Document]:
    return _documents_from_items(path, _parse_jsonl(path, raw))


def _parse_json(path: Path, raw: bytes) -> list[Any]:
    text = _decode_text(path, raw).text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise DocumentError(path, problem,
                            hint="one JSON value per line belongs in a .jsonl file") from exc
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]
    raise DocumentError(path, f"JSON top level is a {type(data).__name__}",
                        hint="use a list of strings or of objects with a 'text' field")


def _parse_jsonl(path: Path, raw: bytes) -> list[Any]:
    items = []
    for lineno, line in enumerate(_decode_text(path, raw).text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DocumentError(path, f"invalid JSON on line {lineno}: {exc.msg}",
                                hint="each line of a .jsonl file must hold one whole JSON "
                                     "value") from exc
    return items


def _documents_from_items(path: Path, items: list[Any]) -> list[Document]:
    fields = ", ".join(repr(f) for f in TEXT_FIELDS)
    documents = []
    for i, item in enumerate(items):
        text, metadata = _item_text(item)
        if text is None:
            raise DocumentError(path, f"item {i} has no text field ({fields})",
                                hint=f"give each item one of {fields}, or make the file a "
                                     "list of strings")
        if not text.strip():
            raise DocumentError(path, f"item {i} has empty text",
                                hint="remove the item or fill in its text")
        documents.append(Document(text=text, source=f"{path}#{i}", sha256=sha256_text(text),
                                  pages=((0, len(text)),), metadata=metadata))
    if not documents:
        raise DocumentError(path, "JSON collection holds no items",
                            hint="add at least one abstract")
    return documents


def _item_text(item: Any) -> tuple[str | None, dict[str, Any]]:
    """The text of one collection item and its metadata; text is None if not recognised."""
    if isinstance(item, str):
        return _normalise_newlines(item).strip(), {}
    if not isinstance(item, dict):
        return None, {}
    key = next((k for k in TEXT_FIELDS if isinstance(item.get(k), str)), None)
    if key is None:
        return None, {}
    text = _normalise_newlines(item[key])
    if key == "prompt":
        text = text.removesuffix(NERRE_PROMPT_END)
    text = text.strip()
    metadata = {k: item[k] for k in ("doi", "id") if isinstance(item.get(k), (str, int))}
    title = item.get("title")
    if isinstance(title, str) and title.strip():
        title = " ".join(title.split())
        metadata["title"] = title
        if text and not text.startswith(title):
            text = f"{title}\n{text}"
    return text, metadata


_LOADERS = {".txt": _load_plain, ".md": _load_plain, ".html": _load_html, ".htm": _load_html,
            ".pdf": _load_pdf, ".json": _load_json, ".jsonl": _load_jsonl}
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(_LOADERS)
