"""Options are declared once, in the config classes, and every face derives from them."""

from __future__ import annotations

import dataclasses

import click
import pytest
import typer.main

from app.cli.main import app
from app.cli.options import build_options, option_specs
from extraction.batch.driver import BatchOptions
from extraction.batch.output import fingerprint
from extraction.batch.ray_engine import RayOptions
from extraction.config import ExtractorConfig, option_meta
from extraction.errors import ConfigError
from finetune.config import FinetuneConfig


def _command(name: str) -> click.Command:
    group = typer.main.get_command(app)
    return group.commands[name]  # type: ignore[attr-defined]


def _option_names(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts}


@pytest.mark.parametrize("command, classes", [
    ("extract", [ExtractorConfig]),
    ("batch", [ExtractorConfig, BatchOptions, RayOptions]),
    ("finetune", [FinetuneConfig]),
])
def test_every_field_is_an_option_of_its_commands(command, classes):
    names = _option_names(_command(command))
    for cls in classes:
        for spec in option_specs(cls):
            assert f"--{spec.cli}" in names, (command, spec.name)
    assert "--set" in names


def test_option_defaults_and_help_come_from_the_config():
    params = {p.name: p for p in _command("extract").params}
    for name, field in ExtractorConfig.model_fields.items():
        assert params[name].default == field.default, name
        assert field.description and params[name].help.startswith(field.description), name
    assert params["max_attempts"].opts == ["--attempts"]
    assert params["schema_name"].opts == ["--schema"]


def test_finetune_command_and_config_agree_on_the_learning_rate():
    params = {p.name: p for p in _command("finetune").params}
    assert params["learning_rate"].default == FinetuneConfig().learning_rate == 1e-3
    assert params["max_length"].default == FinetuneConfig().max_length


def test_set_reaches_any_field_and_names_a_bad_one():
    config = build_options(ExtractorConfig, {"adapter": "none"}, ["top_k=6", "few_shot=none",
                                                                  "retrieval=on"],
                           command="extract")
    assert (config.top_k, config.few_shot, config.retrieval, config.adapter) == (6, None, "on",
                                                                                 None)
    with pytest.raises(ConfigError, match="no option 'topk'"):
        build_options(ExtractorConfig, {}, ["topk=6"], command="extract")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        build_options(ExtractorConfig, {}, ["top_k"], command="extract")


def test_a_bad_value_is_named_as_typed_on_the_command_line():
    with pytest.raises(ConfigError, match=r"^--attempts: .*less than or equal to 5"):
        build_options(ExtractorConfig, {"max_attempts": 9}, command="extract")
    with pytest.raises(ConfigError, match=r"^--retrieval: "):
        build_options(ExtractorConfig, {"retrieval": "sometimes"}, command="extract")


def test_repeatable_options_become_the_dataclass_tuples():
    built = build_options(BatchOptions, {"include": ["*.pdf", "*.txt"]}, command="batch")
    assert built.include == ("*.pdf", "*.txt")
    assert dataclasses.replace(built, ray=RayOptions(actors=2)).ray.actors == 2


def _config(**changes) -> ExtractorConfig:
    return ExtractorConfig(**{"adapter": "none", **changes})


@pytest.mark.parametrize("name", sorted(ExtractorConfig.model_fields))
def test_fingerprint_follows_the_affects_output_flag(name):
    """A speed-only option keeps a batch's lines valid; any other option re-extracts."""
    field = ExtractorConfig.model_fields[name]
    other = {"schema_name": "general", "model": "gemma3-270m", "adapter": "doping-smollm2",
             "unit": "sentence", "extractive": False,
             "precision": "float32", "device": "cpu", "retrieval": "off",
             "embedding_model": "mpnet", "index_dir": "/tmp/index", "few_shot": 1,
             "backend": "transformers",
             "examples": "/tmp/train.jsonl"}
    if name in other:
        value = other[name]
    elif isinstance(field.default, bool):
        value = not field.default
    else:
        value = field.default + 1
    changed = fingerprint(_config(**{name: value})) != fingerprint(_config())
    assert changed == option_meta(ExtractorConfig, name)["affects_output"], name
