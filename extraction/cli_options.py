"""The pipeline options shared by ``matextract extract`` and ``matextract batch``: declared
once (name, type, help, default) and turned into an ExtractorConfig in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from extraction.errors import ConfigError
from extraction.models import ADAPTER_HELP, adapter_choice

if TYPE_CHECKING:
    from extraction.pipeline import ExtractorConfig

Schema = Annotated[str, typer.Option(help="doping | general | mof | schema.json | mod:Class")]
Model = Annotated[str | None, typer.Option(help="registry name or model folder")]
Adapter = Annotated[str, typer.Option(help=ADAPTER_HELP)]
Precision = Annotated[str, typer.Option(help="auto|float32|bfloat16|float16|int8")]
Device = Annotated[str | None, typer.Option(help="cpu | cuda")]
Constrained = Annotated[bool, typer.Option(help="schema-constrained decoding")]
Attempts = Annotated[int, typer.Option(help="Reflexion attempts (1 = no retry)")]
SelfCritique = Annotated[bool, typer.Option(help="ask the model to check itself")]
FewShot = Annotated[int | None, typer.Option(help="number of examples")]
Retrieval = Annotated[str, typer.Option(help="auto | on | off")]
StrictGrounding = Annotated[bool, typer.Option(help="drop values not in the source")]
MaxNewTokens = Annotated[int, typer.Option(help="token budget per answer")]
BatchSize = Annotated[int, typer.Option(help="documents decoded together")]

# ExtractorConfig field -> the option's name on the command line, where they differ.
_OPTION_NAMES = {"max_attempts": "attempts", "schema_name": "schema"}


def pipeline_config(command: str, *, schema: str, model: str | None, adapter: str,
                    precision: str, device: str | None, constrained: bool, attempts: int,
                    self_critique: bool, few_shot: int | None, retrieval: str,
                    strict_grounding: bool, max_new_tokens: int, batch_size: int,
                    **extra: Any) -> ExtractorConfig:
    """The ExtractorConfig of a command's options; a bad value is one line naming the option
    as it is spelled on the command line."""
    from pydantic import ValidationError

    from extraction.pipeline import ExtractorConfig

    try:
        return ExtractorConfig(
            schema_name=schema, adapter=adapter_choice(adapter), precision=precision,
            device=device, constrained=constrained, max_attempts=attempts,
            self_critique=self_critique, few_shot=few_shot, retrieval=retrieval,
            strict_grounding=strict_grounding, max_new_tokens=max_new_tokens,
            batch_size=batch_size, **({"model": model} if model else {}), **extra)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _OPTION_NAMES.get(str(first["loc"][0]), str(first["loc"][0]))
        raise ConfigError(f"--{name.replace('_', '-')}: {first['msg']}",
                          hint=f"see: matextract {command} --help") from None
