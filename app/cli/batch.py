"""``matextract batch``: a folder of documents -> one JSON line per document, resumably.

Mounted in app/cli/main.py, or run alone: ``python -m app.cli.batch FOLDER --out
results.jsonl``. Parsing and display only: extraction.batch does the work.

stdout gets one JSON summary line (for scripts); stderr gets a progress bar and a short
report, nothing with ``--quiet``, or one JSON event per line with ``--log-json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.options import config_command
from app.cli.running import standalone
from extraction.batch.driver import BatchOptions
from extraction.batch.ray_engine import RayOptions
from extraction.config import ExtractorConfig
from extraction.settings import force_offline

force_offline()


class ProgressReport:
    """Progress bar with ETA (tqdm) and one line per failure, on stderr."""

    def __init__(self) -> None:
        self.bar: Any = None

    def _say(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr) if self.bar is not None else typer.echo(text, err=True)

    def __call__(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        kind = event["event"]
        if kind == "start":
            for key in ("torn_lines_dropped", "duplicate_lines_dropped"):
                if event.get(key):
                    self._say(f"repaired {event['out']}: {key.replace('_', ' ')}: {event[key]}")
            for archive, count in (event.get("moved_to_archive") or {}).items():
                self._say(f"{count} line(s) of another configuration moved to {archive}")
        elif kind == "plan":
            extra = f", {event['duplicates']} duplicate(s)" if event["duplicates"] else ""
            self._say(f"{event['documents']} document(s) in {event['files']} file(s): "
                      f"{event['already_done']} already done, {event['todo']} to do{extra}")
            self.bar = tqdm(total=event["todo"], unit="doc", desc="extracting", file=sys.stderr,
                            dynamic_ncols=True)
        elif kind == "model_loaded":
            self._say(f"model {event['model']} on {event['device']} "
                      f"loaded in {event['seconds']:.1f} s")
            if self.bar is not None:  # the ETA must not count the model's load time
                done = self.bar.n
                self.bar.reset()
                self.bar.update(done)
        elif kind == "ray_started":
            self._say(f"ray ({event['address']}): {event['actors']} actor(s), "
                      f"{event['cpus_per_actor']} CPU + {event['gpus_per_actor']} GPU each")
        elif kind == "failure":
            self._say(f"failed: {event['file']}: {event['reason']}")
        elif kind == "summary" and self.bar is not None:
            self.bar.close()
            self.bar = None
        if "done" in event and self.bar is not None:
            self.bar.update(event["done"] - self.bar.n)


def json_log(event: dict[str, Any]) -> None:
    sys.stderr.write(json.dumps({"time": round(time.time(), 3), **event},
                                ensure_ascii=False) + "\n")
    sys.stderr.flush()


def summary_text(summary: dict[str, Any]) -> str:
    minutes, seconds = divmod(int(summary["seconds"]), 60)
    parts = [f"{summary['documents']} document(s): {summary['processed']} extracted, "
             f"{summary['already_done']} already done",
             f"{summary['records']} record(s)", f"{summary['failures']} failure(s)",
             f"{minutes}:{seconds:02d}", f"{summary['docs_per_min']} docs/min"]
    lines = [" | ".join(parts), f"output: {summary['out']} ({summary['output_documents']} "
                                 f"document(s), {summary['output_records']} record(s))"]
    if summary["failures"]:
        lines.append(f"errors: {summary['errors_file']}")
    lines += [f"{kind}: {path}" for kind, path in summary["exports"].items()]
    if "review" in summary["exports"]:
        lines.append(f"{summary['review_values']} value(s) below --min-confidence went to the "
                     "review file, not to the exports")
    return "\n".join(lines)


@config_command(command="batch", config=ExtractorConfig, batch=BatchOptions, ray=RayOptions)
def batch_command(
    config: ExtractorConfig,
    batch: BatchOptions,
    ray: RayOptions,
    folder: Annotated[Path, typer.Argument(help="folder of documents, searched recursively")],
    out: Annotated[Path, typer.Option(help="output .jsonl (re-run to resume); errors, CSV and "
                                           "Parquet are written beside it")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
    log_json: Annotated[bool, typer.Option(help="one JSON event per line on stderr")] = False,
) -> None:
    """Extract every document under FOLDER into --out, one JSON line per document.

    Resumable: re-run the same command after a crash or kill; documents are recognised by
    content hash, and re-extracted when the model, adapter, schema or options change."""
    from extraction.batch.driver import run_batch
    from extraction.models.loading import notices_to

    options = dataclasses.replace(batch, ray=ray)
    report = json_log if log_json else None if quiet else ProgressReport()
    notices = (notices_to(lambda text: json_log({"event": "notice", "message": text}))
               if log_json else contextlib.nullcontext())
    with notices:
        summary = run_batch(folder, config, out=out, options=options, report=report).to_dict()
    if report is not None and not log_json:
        typer.echo(summary_text(summary), err=True)
    typer.echo(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    standalone(batch_command, interrupted="interrupted: re-run the same command to resume")
