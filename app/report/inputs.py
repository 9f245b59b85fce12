"""What a report is made from, read from disk: the results lines, and each document's text
loaded again with the loader ``extract`` used (``extraction.documents.loading``), so the
evidence offsets index into the same text. A source that is gone, changed (its sha256
differs) or read differently now (a span's text is not at its offsets) is shown without its
text, with a notice saying why."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from app.report.html_report import ReportDocument
from extraction.documents import loading
from extraction.errors import DocumentError, MatextractError
from extraction.storage.fileio import sha256_file
from extraction.storage.jsonl import parse_jsonl
from extraction.types import Document, Extraction

_ITEM = re.compile(r"(.+)#(\d+)")  # an item of a JSON collection: "abstracts.jsonl#3"
REQUIRED = ("source", "sha256", "schema", "model")


def read_results(path: Path, *, warn: Callable[[str], None] = lambda line: None
                 ) -> list[Extraction]:
    """Every line of a results file (``extract --out`` or ``batch``), typed. A line that is
    not a result stops with ``file:line``; only a last line cut short (a run killed or still
    writing) is skipped, with a warning."""
    if not path.exists():
        raise DocumentError(path, "results file not found",
                            hint="pass the .jsonl that 'matextract extract --out' or "
                                 "'matextract batch --out' wrote")
    if path.is_dir():
        raise DocumentError(path, "is a directory, not a results file",
                            hint="pass the .jsonl file inside it")
    try:
        lines = parse_jsonl(path.read_bytes())
    except OSError as exc:
        raise DocumentError(path, f"cannot read file: {exc.strerror or exc}") from exc
    results = []
    for line in lines:
        where = f"{path}:{line.number}"
        if line.torn:
            warn(f"{where}: last line cut short (a run killed or still writing); skipped")
            continue
        if not line.parsed:
            raise DocumentError(where, f"not valid JSON ({line.error})",
                                hint="each line must be one result record as 'matextract "
                                     "extract --out' writes it")
        row = line.row
        missing = [key for key in REQUIRED if row is not None and key not in row]
        if row is None or missing:
            problem = (f"not a result record (no {', '.join(repr(k) for k in missing)})"
                       if row is not None else "not a result record (not a JSON object)")
            raise DocumentError(where, problem,
                                hint="a batch's .errors.jsonl lists failures, not results")
        try:
            result = Extraction.from_dict(row)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DocumentError(where, f"not a result record ({type(exc).__name__}: {exc})"
                                ) from exc
        if not all(isinstance(item.confidence, (int, float, type(None)))
                   for item in result.evidence):
            raise DocumentError(where, "not a result record (a confidence is not a number)")
        results.append(result)
    if not results:
        raise DocumentError(path, "holds no result lines",
                            hint="run 'matextract extract ... --out FILE' first")
    return results


def with_texts(results: Sequence[Extraction], *, results_path: Path,
               sources_dir: Path | None = None) -> list[ReportDocument]:
    """Each result with its document text, looked for at the recorded path, beside the
    results file, and in ``sources_dir`` (by relative path, then by file name)."""
    loaded: dict[Path, list[Document] | str] = {}  # file -> its documents, or why it failed
    return [_with_text(result, results_path, sources_dir, loaded) for result in results]


def _with_text(result: Extraction, results_path: Path, sources_dir: Path | None,
               loaded: dict[Path, list[Document] | str]) -> ReportDocument:
    recorded, item = result.source, None
    found = _ITEM.fullmatch(recorded)
    if found and Path(found.group(1)).suffix.lower() in (".json", ".jsonl"):
        recorded, item = found.group(1), int(found.group(2))
    problems, changed, misread = [], None, None
    for candidate in _candidates(Path(recorded), results_path, sources_dir):
        if not candidate.is_file():
            continue
        if item is None and _hash(candidate) not in (result.sha256, None):
            changed = changed or candidate  # not parsed at all: cheap for a changed PDF
            continue
        if candidate not in loaded:
            loaded[candidate] = _load(candidate)
        documents = loaded[candidate]
        if isinstance(documents, str):
            problems.append(f"{candidate}: {documents}")
            continue
        document = documents[item or 0] if (item or 0) < len(documents) else None
        if document is not None and document.sha256 == result.sha256:
            if _offsets_agree(result, document.text):
                return ReportDocument(result, document.text, document.pages)
            misread = misread or candidate
            continue
        changed = changed or candidate
    if misread is not None:  # same file, other text: a loader of another version read it
        notice = (f"the text read now from {misread} does not match the evidence offsets "
                  "(extracted with another matextract version?): only the evidence is shown")
    elif changed is not None:
        notice = (f"source file changed since the extraction (sha256 differs): {changed}; "
                  "its offsets may not match, so only the evidence is shown")
    elif problems:
        notice = f"source file unreadable: {problems[0]}"
    elif result.source.startswith("<"):
        notice = f"source was not a file ({result.source}): only the evidence is shown"
    else:
        notice = f"source file not found: {result.source}" + (
            f" (also looked in {sources_dir})" if sources_dir else "")
    return ReportDocument(result, None, notice=notice)


def _candidates(recorded: Path, results_path: Path, sources_dir: Path | None) -> list[Path]:
    paths = []
    if sources_dir is not None:
        if not recorded.is_absolute():
            paths.append(sources_dir / recorded)
        paths.append(sources_dir / recorded.name)
    paths.append(recorded)
    if not recorded.is_absolute():
        paths.append(results_path.parent / recorded)
    return list(dict.fromkeys(paths))


def _offsets_agree(result: Extraction, text: str) -> bool:
    return all(text[span.start:span.end] == span.text
               for item in result.evidence for span in item.spans)


def _hash(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None  # the loader says why


def _load(path: Path) -> list[Document] | str:
    try:
        return loading.load(path)
    except MatextractError as exc:
        return getattr(exc, "problem", exc.message)
    except Exception as exc:  # noqa: BLE001 - a parser bug on one file must not stop the report
        return f"cannot parse ({type(exc).__name__}: {exc})"
