"""Running a typer app: our errors become one ``error: ...`` line and exit code 2 (no
traceback for a user's mistake), in one place for every command."""

from __future__ import annotations

import sys

import typer

from extraction.errors import MatextractError
from extraction.settings import quiet_libraries


def run_app(typer_app: typer.Typer, *, interrupted: str = "interrupted") -> None:
    quiet_libraries()
    try:
        typer_app(standalone_mode=False)
    except MatextractError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except KeyboardInterrupt:
        typer.echo(interrupted, err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors come here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def standalone(command, *, interrupted: str = "interrupted") -> None:  # noqa: ANN001
    """Run one command function alone (``python -m app.cli.batch ...``)."""
    single = typer.Typer(add_completion=False)
    single.command()(command)
    run_app(single, interrupted=interrupted)
