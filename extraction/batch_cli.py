"""``matextract batch``: a folder of documents -> one JSON line per document, resumably.

Mount with ``app.command("batch")(batch_command)`` in extraction/cli.py, or run alone:
``python -m extraction.batch_cli FOLDER --out results.jsonl``. Parsing and display only:
extraction.batch does the work.

stdout gets one JSON summary line (for scripts); stderr gets a progress bar and a short
report, nothing with ``--quiet``, or one JSON event per line with ``--log-json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from extraction import cli_options as opt
from extraction.settings import DEFAULT_BATCH_SIZE, force_offline

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
    return "\n".join(lines)


def batch_command(
    folder: Annotated[Path, typer.Argument(help="folder of documents, searched recursively")],
    out: Annotated[Path, typer.Option(help="output .jsonl (re-run to resume); errors, CSV and "
                                           "Parquet are written beside it")],
    schema: opt.Schema = "doping",
    model: opt.Model = None,
    adapter: opt.Adapter = "auto",
    precision: opt.Precision = "auto",
    device: opt.Device = None,
    constrained: opt.Constrained = True,
    attempts: opt.Attempts = 2,
    self_critique: opt.SelfCritique = False,
    few_shot: opt.FewShot = None,
    retrieval: opt.Retrieval = "auto",
    strict_grounding: opt.StrictGrounding = False,
    max_new_tokens: opt.MaxNewTokens = 384,
    batch_size: opt.BatchSize = DEFAULT_BATCH_SIZE,
    include: Annotated[list[str] | None, typer.Option(
        help="only files matching this glob (relative path or name; repeatable)")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        help="leave out files or folders matching this glob (repeatable)")] = None,
    engine: Annotated[str, typer.Option(help="local | ray")] = "local",
    address: Annotated[str | None, typer.Option(
        help="ray: cluster to join ('auto', HOST:6379, ray://HOST:10001); default: local Ray")]
    = None,
    num_cpus: Annotated[int | None, typer.Option(help="ray: CPUs of the local Ray")] = None,
    actors: Annotated[int | None, typer.Option(help="ray: model replicas")] = None,
    cpus_per_actor: Annotated[float, typer.Option(help="ray: CPUs per replica")] = 1.0,
    gpus_per_actor: Annotated[float | None, typer.Option(
        help="ray: GPUs per replica (default: 1 if the cluster has GPUs)")] = None,
    parse_workers: Annotated[int | None, typer.Option(
        help="local: parser processes ahead of the model (0: none)")] = None,
    export: Annotated[bool, typer.Option(help="write CSV (and Parquet) of all records")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
    log_json: Annotated[bool, typer.Option(help="one JSON event per line on stderr")] = False,
) -> None:
    """Extract every document under FOLDER into --out, one JSON line per document.

    Resumable: re-run the same command after a crash or kill; documents are recognised by
    content hash, and re-extracted when the model, adapter, schema or options change."""
    from extraction.batch import BatchOptions, run_batch
    from extraction.batch_ray import RayOptions

    config = opt.pipeline_config(
        "batch", schema=schema, model=model, adapter=adapter, precision=precision,
        device=device, constrained=constrained, attempts=attempts, self_critique=self_critique,
        few_shot=few_shot, retrieval=retrieval, strict_grounding=strict_grounding,
        max_new_tokens=max_new_tokens, batch_size=batch_size)
    options = BatchOptions(
        include=tuple(include or ()), exclude=tuple(exclude or ()), engine=engine,
        parse_workers=parse_workers, export=export,
        ray=RayOptions(address=address, num_cpus=num_cpus, actors=actors,
                       cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor))
    report = json_log if log_json else None if quiet else ProgressReport()
    summary = run_batch(folder, config, out=out, options=options, report=report).to_dict()
    if report is not None and not log_json:
        typer.echo(summary_text(summary), err=True)
    typer.echo(json.dumps(summary, ensure_ascii=False))


def main() -> None:
    """Run ``batch_command`` alone, with the same error handling as ``matextract``."""
    from extraction.errors import MatextractError
    from extraction.settings import quiet_libraries

    quiet_libraries()
    app = typer.Typer(add_completion=False)
    app.command()(batch_command)
    try:
        app(standalone_mode=False)
    except MatextractError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: re-run the same command to resume", err=True)
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
