"""Command-line options derived from option classes: each field (type, default, help, CLI
name, group) is declared once, in ``ExtractorConfig`` / ``FinetuneConfig`` (pydantic, help
in ``description``, the rest in ``extraction.config.option``) or in a dataclass such as
``BatchOptions`` (help and cli name in the field's ``metadata``). Commands get one option per
field, plus ``--set KEY=VALUE`` for the first class.

``config_command(command=..., config=ExtractorConfig, batch=BatchOptions)`` wraps a function
``f(config, batch, *own)``: the typer command takes ``f``'s own options and every field of
each class; ``f`` receives the built objects. A bad value is one line naming the option as
it is spelled on the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel, ValidationError

from extraction.config import PIPELINE, option_meta, parse_value
from extraction.errors import ConfigError

SET_HELP = "KEY=VALUE for any option by its field name (repeatable), e.g. --set top_k=6"


@dataclass(frozen=True)
class OptionSpec:
    """One field of an option class, as the command line shows it."""

    name: str
    annotation: Any
    default: Any
    help: str
    cli: str
    group: str


def option_specs(cls: type, *, group: str = PIPELINE) -> list[OptionSpec]:
    """The fields of a pydantic model or a dataclass (nested dataclasses left out)."""
    if issubclass(cls, BaseModel):
        return [OptionSpec(name, field.annotation, field.default, field.description or "",
                           **{k: option_meta(cls, name)[k] for k in ("cli", "group")})
                for name, field in cls.model_fields.items()]
    hints = typing.get_type_hints(cls)
    specs = []
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(_cli_type(hints[field.name])):
            continue
        specs.append(OptionSpec(field.name, hints[field.name], field.default,
                                field.metadata.get("help", ""),
                                field.metadata.get("cli", field.name.replace("_", "-")),
                                field.metadata.get("group", group)))
    return specs


def _cli_type(annotation: Any) -> Any:
    """The type typer parses: Literal -> its values' type (the class checks the choice),
    ``X | None`` -> Optional[X], ``tuple[X, ...]`` -> list[X] (a repeatable option)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return type(typing.get_args(annotation)[0])
    if origin is tuple:
        return list[typing.get_args(annotation)[0]]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _cli_type(args[0]) if len(args) == 1 else str
        return typing.Optional[inner]
    return annotation


def _help(spec: OptionSpec) -> str:
    choices = typing.get_args(spec.annotation) \
        if typing.get_origin(spec.annotation) is Literal else ()
    extra = f" [{' | '.join(map(str, choices))}]" if choices and "|" not in spec.help else ""
    return spec.help + extra


def _parameter(spec: OptionSpec) -> inspect.Parameter:
    default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    kind = _cli_type(spec.annotation)
    names = f"--{spec.cli}/--no-{spec.cli}" if kind is bool else f"--{spec.cli}"
    info = typer.Option(names, help=_help(spec), rich_help_panel=spec.group)
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, info])


def _set_parameter() -> inspect.Parameter:
    return inspect.Parameter(
        "set_options", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[typing.Optional[list[str]],
                             typer.Option("--set", help=SET_HELP, rich_help_panel="Other")])


def _cli_name(specs: list[OptionSpec], name: str) -> str:
    return next((f"--{s.cli}" for s in specs if s.name == name), name)


def build_options(cls: type, values: dict[str, Any], set_options: Sequence[str] = (), *,
                  command: str) -> Any:
    """An option object from a command's values and ``--set`` pairs; a bad value or an
    unknown key is one ConfigError naming what was typed."""
    specs = option_specs(cls)
    values = dict(values)
    known = {s.name for s in specs}
    for item in set_options:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ConfigError(f"--set {item!r}: " + (f"no option {key!r}" if sep
                                                     else "expected KEY=VALUE"),
                              hint=f"options: {', '.join(sorted(known))}")
        values[key] = parse_value(raw)
    for spec in specs:  # repeatable options come as lists; the classes hold tuples
        if isinstance(spec.default, tuple) and isinstance(values.get(spec.name), list):
            values[spec.name] = tuple(values[spec.name])
    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        raise ConfigError(f"{_cli_name(specs, name)}: {first['msg']}",
                          hint=f"see: matextract {command} --help") from None


def config_command(*, command: str, **classes: type) -> Callable[[Callable[..., Any]],
                                                                 Callable[..., Any]]:
    """Decorate ``f(<name>=<object of class>, ..., *own)``: see the module docstring."""
    fields = {name: option_specs(cls) for name, cls in classes.items()}
    clis = [s.cli for specs in fields.values() for s in specs]
    if len(clis) != len(set(clis)):
        raise ValueError(f"{command}: two fields share an option name: {sorted(clis)}")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(func, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(func).parameters.values() if p.name not in classes]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            set_options = kwargs.pop("set_options", None) or []
            built = {}
            for position, (name, cls) in enumerate(classes.items()):
                values = {s.name: kwargs.pop(s.name) for s in fields[name] if s.name in kwargs}
                built[name] = build_options(cls, values, set_options if position == 0 else [],
                                            command=command)
            return func(**built, **kwargs)

        generated = [_parameter(s) for specs in fields.values() for s in specs]
        wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [*own, *generated, _set_parameter()])
        wrapper.__annotations__ = {}
        del wrapper.__wrapped__  # typer must see the generated signature, not func's
        return wrapper

    return decorate
