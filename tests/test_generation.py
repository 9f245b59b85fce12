"""Constrained decoding: always valid JSON inside the budget; unconstrained stops at the end."""

from __future__ import annotations

import json

import pytest

from extraction import generation, prompting
from extraction.errors import GenerationError
from extraction.schemas import get_schema


@pytest.mark.parametrize("budget", [64, 100, 160])
def test_closing_mode_finishes_valid_json_inside_a_small_budget(tiny_model, budget):
    spec = get_schema("general")  # the largest schema: random weights would run far past 64
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    prompt = prompting.render(tiny_model.tokenizer,
                              prompting.build_messages(spec, "TiO2 anatase films."))
    out = generation.generate(tiny_model, prompt, constraint=constraint, max_new_tokens=budget)
    assert out.finish_reason == "complete" and len(out.token_ids) <= budget
    spec.model.model_validate(json.loads(out.text))


def test_budget_below_the_closing_reserve_is_refused(tiny_model):
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    with pytest.raises(GenerationError, match="too small"):
        generation.generate(tiny_model, "x", constraint=constraint, max_new_tokens=8)


def test_generation_is_deterministic(tiny_model):
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    prompt = prompting.render(tiny_model.tokenizer, prompting.build_messages(spec, "Mn:ZnO"))
    first = generation.generate(tiny_model, prompt, constraint=constraint, max_new_tokens=80)
    second = generation.generate(tiny_model, prompt, constraint=constraint, max_new_tokens=80)
    assert first.token_ids == second.token_ids and first.prompt_tokens > 0


@pytest.mark.parametrize("pieces,ends_at", [
    (['{"a":', '"}"', ',"b":[1,', "2]}", "trailing"], 3),
    (["noise ", '{"x":"{"}', "more"], 1),
    (['{"a":"\\"}"', "}"], 1),
])
def test_json_end_scanner(pieces, ends_at):
    scanner = generation._JsonEndScanner()
    ended = [scanner.feed(piece) for piece in pieces]
    assert ended.index(True) == ends_at


def test_choose_returns_one_of_the_options(tiny_model):
    assert generation.choose(tiny_model, "Is it? Reply yes or no.", ["yes", "no"]) in ("yes", "no")


@pytest.mark.parametrize("schema", ["doping", "mof"])
def test_prefix_reuse_gives_identical_outputs(tiny_model, schema):
    spec = get_schema(schema)
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    prefix = generation.PrefixCache(tiny_model,
                                    prompting.fixed_prefix(tiny_model.tokenizer, spec))
    for text in ["Mn-doped ZnO.", "ZIF-8 takes up CO2 at 298 K.", "Nothing here."]:
        prompt = prompting.render(tiny_model.tokenizer, prompting.build_messages(spec, text))
        plain = generation.generate(tiny_model, prompt, constraint=constraint,
                                    max_new_tokens=120)
        reused = generation.generate(tiny_model, prompt, constraint=constraint,
                                     max_new_tokens=120, prefix=prefix)
        assert reused.reused_prefix_tokens == len(prefix.ids) > 100
        assert plain.reused_prefix_tokens == 0
        assert reused.text == plain.text and reused.token_ids == plain.token_ids


def test_prefix_that_does_not_match_is_not_used(tiny_model):
    prefix = generation.PrefixCache(tiny_model, "Some other prefix entirely")
    out = generation.generate(tiny_model, "A prompt", max_new_tokens=5, prefix=prefix)
    assert out.reused_prefix_tokens == 0
