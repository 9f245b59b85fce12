"""``matextract eval``: run a grid on a task and print the report table.

Mounted in app/cli/main.py; ``python -m app.cli.eval`` runs it alone. No logic here beyond
parsing: eval.runner and eval.report do the work.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from app.cli.running import standalone
from extraction.config import ExtractorConfig
from extraction.errors import ConfigError
from extraction.models import DEFAULT_MODEL

EXAMPLES_HELP = (f"{ExtractorConfig.model_fields['examples'].description}; any of its texts "
                 "that is also a scored text is left out")


def run_eval(
    task: Annotated[str, typer.Option(
        help="doping | doping-abstracts | general:K | mof:K | jsonl:PATH | heldout:ADAPTER | "
             "heldout-abstracts:ADAPTER")] = "doping",
    models: Annotated[Optional[list[str]], typer.Option(
        "--model", help="registry name or model folder; repeat for several")] = None,
    adapters: Annotated[Optional[list[str]], typer.Option(
        "--adapter", help="LoRA adapter folder or shipped name, 'none' for the base model, "
                          "'auto' (default): the shipped adapter for the model and task, if "
                          "any; repeat for several")] = None,
    set_options: Annotated[Optional[list[str]], typer.Option(
        "--set", help="OPTION=V1,V2 (any ExtractorConfig field), e.g. max_attempts=1,2; "
                      "repeat for a grid")] = None,
    examples: Annotated[Optional[Path], typer.Option(help=EXAMPLES_HELP)] = None,
    limit: Annotated[Optional[int], typer.Option(help="only the first N examples")] = None,
    out: Annotated[Path, typer.Option(help="results folder (re-run to resume)")]
    = Path("eval-results"),
    report_only: Annotated[bool, typer.Option(help="only rebuild the report from --out")] = False,
    accept_unreachable: Annotated[bool, typer.Option(
        help="run a jsonl: task even when over 2% of its gold cannot be produced under the "
             "schema's bounds")] = False,
    fit_calibration: Annotated[bool, typer.Option(
        help="fit each run's confidence calibration on its values and store it with its "
             "adapter (or, for a base model, in matextract's data folder); only on held-out "
             "training data such as heldout:ADAPTER, never on a test split")] = False,
    choose_attempts: Annotated[bool, typer.Option(
        help="from runs of --set max_attempts=1,2 on held-out data (heldout:ADAPTER), write "
             "each adapter's Reflexion attempts into its card: the fewest unless more add "
             ">= 0.02 F1; inference uses it when --attempts is not given")] = False,
) -> None:
    """Run models x adapters x options on a task (resumable), then write results.json,
    report.md and PNG plots into --out and print the table."""
    from eval.report import write_report

    if not report_only:
        from eval.runner import (build_grid, check_models, check_reachable, parse_options,
                                 run_grid)
        from eval.tasks import load_task

        chosen = list(models or [DEFAULT_MODEL])
        chosen_adapters: list[str | None] = [
            None if not a or a.lower() == "none" else a for a in adapters or ["auto"]]
        grid_options = parse_options(set_options or [])
        check_models(chosen, chosen_adapters)
        loaded_task = load_task(task, examples=examples)
        grid = build_grid(loaded_task, chosen, chosen_adapters, grid_options)
        for line in check_reachable(loaded_task, grid, accept=accept_unreachable):
            typer.echo(line, err=True)
        run_grid(loaded_task, grid, out=out, limit=limit,
                 command=command_line(task, chosen, chosen_adapters, set_options or [],
                                      limit, out, examples=examples,
                                      accept_unreachable=accept_unreachable))
    elif not out.is_dir():
        raise ConfigError(f"{out} is not a results folder", hint="run without --report-only")
    markdown = write_report(out)
    typer.echo(markdown)
    typer.echo(f"wrote {out / 'report.md'}, {out / 'results.json'} and plots", err=True)
    if fit_calibration:
        store_calibrations(out)
    if choose_attempts:
        store_attempts(out)


def store_calibrations(out: Path) -> None:
    """Fit and store the calibration of every run in a results folder."""
    from eval.calibration import fit_runs
    from eval.report import load_runs
    from extraction.confidence.store import save_calibration

    try:
        fitted = fit_runs(load_runs(out))
    except ValueError as exc:
        raise ConfigError(f"cannot fit a calibration: {exc}",
                          hint="run on held-out data, e.g. --task heldout:ADAPTER") from exc
    for config, calibration in fitted:
        path = save_calibration(calibration, config.get("adapter"), str(config["model"]),
                                calibration.schema)
        typer.echo(f"calibration fitted on {calibration.values} values "
                   f"(in-sample ECE {calibration.measures['ece_uncalibrated']:.3f} raw -> "
                   f"{calibration.measures['ece_fitted']:.3f}): {path}", err=True)


def store_attempts(out: Path) -> None:
    """Choose and store the Reflexion attempts of every adapter run in a results folder."""
    from eval.attempts import choose_attempts, store_choice
    from eval.report import load_runs

    for choice in choose_attempts(load_runs(out)):
        path = store_choice(choice, results=str(out))
        scores = ", ".join(f"{count}: {f1:.3f}" for count, f1 in choice.f1.items())
        typer.echo(f"{choice.adapter} on {choice.schema}: max_attempts {choice.chosen} "
                   f"({choice.kind} F1 by attempts {scores}): {path}", err=True)


def command_line(task: str, models: list[str], adapters: list[str | None],
                 set_options: list[str], limit: int | None, out: Path, *,
                 examples: Path | None = None, accept_unreachable: bool = False) -> str:
    """The command that reproduces a run, however it was started (saved beside the results)."""
    words = ["matextract", "eval", "--task", task]
    words += [w for m in models for w in ("--model", m)]
    words += [w for a in adapters for w in ("--adapter", a or "none")]
    words += [w for o in set_options for w in ("--set", o)]
    words += ["--examples", str(examples)] if examples is not None else []
    words += ["--limit", str(limit)] if limit is not None else []
    words += ["--accept-unreachable"] if accept_unreachable else []
    return " ".join(shlex.quote(w) for w in [*words, "--out", str(out)])


if __name__ == "__main__":
    standalone(run_eval)
