"""Constrained decoding: always valid JSON inside the budget; unconstrained stops at the end."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode

from extraction import prompting
from extraction.decoding import batched as decoding
from extraction.decoding import generation
from extraction.errors import GenerationError
from extraction.schemas import get_schema


@contextlib.contextmanager
def _boosted(model: torch.nn.Module, token_ids: list[int]) -> Iterator[None]:
    """The model with these tokens' logits raised far above the rest, while inside."""
    def hook(module, args, out):
        out.logits[..., token_ids] += 1000.0
        return out

    handle = model.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.parametrize("budget", [64, 100, 160])
def test_closing_mode_finishes_valid_json_inside_a_small_budget(tiny_model, budget):
    spec = get_schema("general")  # the largest schema: random weights would run far past 64
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    prompt = prompting.render(tiny_model.tokenizer,
                              prompting.build_messages(spec, "TiO2 anatase films."))
    out = generation.generate(tiny_model, prompt, constraint=constraint, max_new_tokens=budget)
    assert out.finish_reason == "complete" and len(out.token_ids) <= budget
    spec.model.model_validate(json.loads(out.text))


@pytest.mark.parametrize("schema", ["general", "mof"])
def test_closing_mode_finishes_even_when_keys_are_spelled_byte_by_byte(tiny_model, schema):
    """The worst case for the reserve: a model that spells everything one byte at a time,
    opens every object it may ("{") and never closes anything itself ("]", "}")."""
    spec = get_schema(schema)
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    prompt = prompting.render(tiny_model.tokenizer,
                              prompting.build_messages(spec, "TiO2 anatase films."))
    spelled = bytes_to_unicode()
    single_bytes = tiny_model.tokenizer.convert_tokens_to_ids(
        [spelled[b] for b in range(256) if chr(b) not in "]}"])
    budget = 2 * constraint.reserve
    with _boosted(tiny_model.model, single_bytes), \
            _boosted(tiny_model.model, tiny_model.tokenizer.convert_tokens_to_ids(["{"])):
        out = generation.generate(tiny_model, prompt, constraint=constraint,
                                  max_new_tokens=budget)
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
    scanner = decoding.JsonEndScanner()
    ended = [scanner.feed(piece) for piece in pieces]
    assert ended.index(True) == ends_at


CHOICES = [("Is it? Reply yes or no.", ["yes", "no"]),
           ("TiO2 films were annealed at 500 C. The phase is", ["anatase", "rutile", "brookite"])]


@pytest.mark.parametrize("prompt, options", CHOICES)
def test_choose_returns_the_option_with_the_highest_first_token_log_probability(
        tiny_model, prompt, options):
    """The reference: a plain full-sequence forward pass, each option's first token spelled
    as is, capitalised, and after a space."""
    tokenizer = tiny_model.tokenizer
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        log_probs = torch.log_softmax(tiny_model.model(input_ids=ids).logits[0, -1], dim=-1)

    def best_first_token(option: str) -> float:
        variants = (option, option.capitalize(), " " + option, " " + option.capitalize())
        return max(float(log_probs[tokenizer.encode(v, add_special_tokens=False)[0]])
                   for v in variants)

    scores = {option: best_first_token(option) for option in options}
    assert len(set(scores.values())) == len(options)  # no tie: one right answer
    expected = max(scores, key=scores.__getitem__)
    assert generation.choose(tiny_model, prompt, options) == expected
    assert generation.choose(tiny_model, prompt, options[::-1]) == expected


@pytest.mark.parametrize("spelling, expected", [("no", "no"), (" No", "no"), ("Yes", "yes"),
                                                (" yes", "yes")])
def test_choose_counts_every_spelling_of_an_option(tiny_model, spelling, expected):
    token = tiny_model.tokenizer.encode(spelling, add_special_tokens=False)[0]
    with _boosted(tiny_model.model, [token]):
        assert generation.choose(tiny_model, "Is it? Reply yes or no.", ["yes", "no"]) == expected


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


@pytest.mark.parametrize("schema", ["doping", "general"])
def test_fast_forward_gives_the_greedy_answer(tiny_model, schema):
    """Forced tokens are verified against the model's own choice, so the answer is unchanged
    whether they were proposed or not (random weights reject many: rollback is exercised)."""
    spec = get_schema(schema)
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    forced = 0
    for text in ["Mn-doped ZnO.", "TiO2 anatase films for photocatalysis.", "Nothing here."]:
        prompt = prompting.render(tiny_model.tokenizer, prompting.build_messages(spec, text))
        plain = generation.generate(tiny_model, prompt, constraint=constraint,
                                    max_new_tokens=120)
        fast = generation.generate(tiny_model, prompt, constraint=constraint,
                                   max_new_tokens=120, fast_forward=True)
        assert fast.token_ids == plain.token_ids and fast.finish_reason == plain.finish_reason
        assert plain.forced_tokens == 0
        assert plain.forward_passes == len(plain.token_ids) + (plain.finish_reason != "complete")
        # One pass per model-chosen token, plus at most one that only verifies a forced end.
        assert fast.forward_passes - plain.forward_passes + fast.forced_tokens in (0, 1)
        forced += fast.forced_tokens
    assert forced > 0  # "{" and the first key are forced and agree with the grammar's only path


def test_fast_forward_is_off_for_sliding_window_caches(tiny_model):
    config = tiny_model.model.config
    saved = getattr(config, "layer_types", None)
    try:
        config.layer_types = ["sliding_attention"] * config.num_hidden_layers
        assert not generation._full_attention_only(tiny_model.model)
    finally:
        config.layer_types = saved
    assert generation._full_attention_only(tiny_model.model)


@pytest.mark.parametrize("constrained", [True, False])
def test_batched_generation_matches_one_at_a_time(tiny_model, constrained):
    """Rows of different lengths share a padded batch and leave it as they finish; each
    answer is the one its prompt gets alone (with the prefix cache and fast-forward on)."""
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema()) if constrained \
        else None
    prefix = generation.PrefixCache(tiny_model,
                                    prompting.fixed_prefix(tiny_model.tokenizer, spec))
    texts = ["Mn-doped ZnO.", "Nothing here at all, just a longer sentence about furnaces.",
             "Er3+ and Yb3+ co-doped NaYF4 nanocrystals.", "Ga:ZnO"]
    prompts = [prompting.render(tiny_model.tokenizer, prompting.build_messages(spec, t))
               for t in texts]
    budgets = {"max_new_tokens": 90, "constraint": constraint, "prefix": prefix,
               "fast_forward": True}
    together = generation.generate_many(tiny_model, prompts, **budgets)
    alone = [generation.generate(tiny_model, p, **budgets) for p in prompts]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]
    assert [g.finish_reason for g in together] == [g.finish_reason for g in alone]
    assert all(g.reused_prefix_tokens == len(prefix.ids) for g in together)
    if constrained:  # random weights never close unconstrained JSON: all hit the budget
        assert len({len(g.token_ids) for g in together}) > 1  # rows finished apart


def test_grammar_rejects_surrogate_code_points(tiny_model):
    """Byte-level vocabularies can spell U+D984 (ED A6 84), which is not UTF-8: it decodes to
    three replacement characters and broke a 48-character bound found by a random model.
    After ED, the grammar must refuse A0-BF (a surrogate) and accept 80-9F (U+D000-U+D7FF)."""
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    spelled = bytes_to_unicode()  # how a byte-level vocabulary writes each byte
    byte_token = dict(zip(range(256), tiny_model.tokenizer.convert_tokens_to_ids(
        [spelled[b] for b in range(256)])))
    assert len(set(byte_token.values())) == 256  # every byte is a token of its own
    for third, allowed in [(0x9F, True), (0xA6, False)]:
        matcher = constraint.matcher()
        assert matcher.accept_string('{"hosts":["x')
        assert matcher.accept_token(byte_token[0x20]) and matcher.accept_token(byte_token[0xED])
        assert matcher.accept_token(byte_token[third]) is allowed
