"""The output file: where a batch writes, the configuration fingerprint each line carries,
repair on start (appends go through ``extraction.storage.jsonl.Appender``)."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extraction.errors import ConfigError
from extraction.storage.hashing import stable_hash
from extraction.storage.jsonl import JsonlLine, encode_jsonl, parse_jsonl, rewrite_jsonl

if TYPE_CHECKING:  # the pipeline imports torch: parse workers must not pay for it
    from extraction.config import ExtractorConfig


@dataclass(frozen=True)
class OutputPaths:
    """Every file a batch writes: all of them in the output's own folder."""

    out: Path

    @classmethod
    def for_out(cls, out: Path) -> OutputPaths:
        out = Path(os.path.abspath(out))
        if out.suffix != ".jsonl":
            raise ConfigError(f"{out}: the output must be a .jsonl file",
                              hint="e.g. --out results/doping.jsonl")
        if out.is_dir():
            raise ConfigError(f"{out} is a folder", hint="name a .jsonl file inside it")
        paths = cls(out)
        for path in paths.artefacts():
            if path.is_symlink():  # appending through a link would write outside the folder
                raise ConfigError(f"{path} is a symbolic link; batch writes only real files in "
                                  f"{out.parent}", hint="remove the link or choose another --out")
        return paths

    @property
    def folder(self) -> Path:
        return self.out.parent

    @property
    def errors(self) -> Path:
        return self.folder / f"{self.out.stem}.errors.jsonl"

    @property
    def csv(self) -> Path:
        return self.folder / f"{self.out.stem}.csv"

    @property
    def parquet(self) -> Path:
        return self.folder / f"{self.out.stem}.parquet"

    @property
    def review(self) -> Path:
        """Values below ``--min-confidence``, one JSON line each (nothing is dropped)."""
        return self.folder / f"{self.out.stem}.review.jsonl"

    @property
    def lock(self) -> Path:
        return self.folder / f".{self.out.name}.lock"

    def archive(self, fingerprint: str) -> Path:
        return self.folder / f"{self.out.stem}.previous-{fingerprint}.jsonl"

    def artefacts(self) -> list[Path]:
        return [self.out, self.errors, self.csv, self.parquet, self.review, self.lock]

    def owns(self, path: Path) -> bool:
        """True for files this batch writes (never read back as input documents)."""
        if Path(os.path.abspath(path.parent)).resolve() != self.folder.resolve():
            return False
        archive = rf"{re.escape(self.out.stem)}\.previous-[0-9a-f]+\.jsonl"
        return (path.name in {p.name for p in self.artefacts()}
                or re.fullmatch(archive, path.name) is not None)


def fingerprint(config: ExtractorConfig) -> str:
    """What the records depend on: model, adapter, schema (version and JSON Schema) and every
    option that affects output set away from its default (so a new option with a default
    keeps old lines valid). Speed-only options are declared so in ExtractorConfig."""
    from extraction.types import OUTPUT_FORMAT_VERSION
    from extraction.schemas import get_schema

    spec = get_schema(config.schema_name)
    identity = {
        "format": OUTPUT_FORMAT_VERSION, "model": config.model, "adapter": config.adapter,
        "schema": {"name": spec.name, "version": spec.version,
                   "json_schema": stable_hash(spec.json_schema(), length=64)},
        "options": config.model_dump(
            mode="json", exclude_defaults=True,
            include=config.output_fields() - {"model", "adapter", "schema_name"}),
    }
    return stable_hash(identity)


# --- the output file: repair on start -----------------------------------------------------

@dataclass
class Resume:
    done: set[str]  # content hashes with a line of the current configuration
    kept: int = 0
    torn: int = 0  # a last line cut short by a kill, dropped
    duplicates: int = 0
    moved: dict[str, int] = field(default_factory=dict)  # archive file -> lines moved there


def _is_record(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("sha256"), str)
            and "fingerprint" in value)


def open_output(paths: OutputPaths, current: str) -> Resume:
    """Read the output file and repair it in place: drop a torn or duplicate line, move lines
    of another configuration to their archive. Archives are written (merged, deduplicated)
    before the output is rewritten, so a kill in between loses and duplicates nothing."""
    resume = Resume(done=set())
    if not paths.out.exists():
        return resume
    data = paths.out.read_bytes()
    kept: list[JsonlLine] = []
    stale: dict[str, list[JsonlLine]] = {}
    for line in parse_jsonl(data):
        if line.torn:
            resume.torn += 1
            continue
        row = line.value
        if not _is_record(row):  # one appender, so only the last line can be torn: not ours
            raise ConfigError(f"{paths.out} line {line.number} is not a batch record; refusing "
                              "to rewrite a file that batch did not write",
                              hint="choose another --out (a new .jsonl file)")
        if row["fingerprint"] != current:
            stale.setdefault(str(row["fingerprint"]), []).append(line)
        elif row["sha256"] in resume.done:
            resume.duplicates += 1
        else:
            resume.done.add(row["sha256"])
            kept.append(line)
    resume.kept = len(kept)
    for old, lines in stale.items():
        archive = paths.archive(re.sub(r"[^0-9a-f]", "", old)[:16] or "unknown")
        previous = parse_jsonl(archive.read_bytes()) if archive.exists() else []
        merged = {line.value["sha256"]: line for line in [*previous, *lines]
                  if line.row is not None and isinstance(line.row.get("sha256"), str)}
        rewrite_jsonl(archive, merged.values())
        resume.moved[str(archive)] = len(lines)
    clean = encode_jsonl(kept)
    if clean != data:
        rewrite_jsonl(paths.out, kept)
    return resume


@contextmanager
def locked(paths: OutputPaths) -> Iterator[None]:
    """One batch per output file at a time (the lock dies with its process)."""
    handle = paths.lock.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another batch is writing {paths.out}",
                              hint="wait for it to finish, or use another --out") from None
        yield
    finally:
        handle.close()


