"""Packed batch steps (all rows' tokens as one sequence, the prompt prefix attended once) give
every row the answer it gets alone through transformers' own attention, on each supported
architecture. Tiny random models; Gemma 3's window (24) is far shorter than the prompt, so
its windowed layers see a different set of keys than its global ones."""

from __future__ import annotations

import pytest

from extraction import prompting
from extraction.decoding import generation
from extraction import models
from extraction.decoding import packed
from extraction.schemas import get_schema
from tests.conftest import tiny_model_folder

TEXTS = ["Mn-doped ZnO.", "Nothing here at all, just a longer sentence about furnaces.",
         "Er3+ and Yb3+ co-doped NaYF4 nanocrystals.", "Ga:ZnO"]


@pytest.fixture(scope="module", params=sorted(packed.SUPPORTED_MODEL_TYPES))
def tiny(request, tiny_tokenizer_dir, tmp_path_factory):
    folder = tiny_model_folder(request.param, tiny_tokenizer_dir,
                               tmp_path_factory.mktemp(f"packed-{request.param}"))
    return models.load(str(folder), device="cpu")


@pytest.mark.parametrize("constrained", [True, False])
def test_packed_batch_gives_each_row_its_answer_alone(tiny, constrained):
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(tiny, spec.json_schema()) if constrained else None
    prefix = generation.PrefixCache(tiny, prompting.fixed_prefix(tiny.tokenizer, spec))
    prompts = [prompting.render(tiny.tokenizer, prompting.build_messages(spec, text))
               for text in TEXTS]
    assert packed.supports(tiny.model)
    together = generation.generate_many(tiny, prompts, constraint=constraint,
                                        max_new_tokens=90, prefix=prefix, fast_forward=True)
    # The reference: one prompt at a time through transformers' own attention and cache.
    alone = [generation.generate(tiny, prompt, constraint=constraint, max_new_tokens=90,
                                 packed=False) for prompt in prompts]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]
    assert [g.finish_reason for g in together] == [g.finish_reason for g in alone]
    assert all(g.reused_prefix_tokens == len(prefix.ids) for g in together)
    if constrained:  # fast-forward ran (on Gemma 3 too: packed steps window by position)
        assert sum(g.forced_tokens for g in together) > 0
        assert len({len(g.token_ids) for g in together}) > 1  # rows finished apart


def test_packed_and_padded_batches_agree_without_a_prefix(tiny):
    """No shared prefix: every row's whole prompt goes through its own slots."""
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(tiny, spec.json_schema())
    prompts = [prompting.render(tiny.tokenizer, prompting.build_messages(spec, text))
               for text in TEXTS[:2]]
    runs = {mode: generation.generate_many(tiny, prompts, constraint=constraint,
                                           max_new_tokens=64, packed=mode)
            for mode in (True, False)}
    assert [g.token_ids for g in runs[True]] == [g.token_ids for g in runs[False]]
    assert all(g.reused_prefix_tokens == 0 for g in runs[True])


def test_other_attention_calls_are_plain_sdpa_once_enabled(tiny):
    """Enabling packed steps leaves every other forward pass (prefix caches, training,
    scoring) as it was."""
    import torch

    ids = tiny.tokenizer("Mn-doped ZnO thin films", return_tensors="pt")["input_ids"]
    packed.enable(tiny.model)
    with torch.inference_mode():
        routed = tiny.model(input_ids=ids).logits
        tiny.model.set_attn_implementation("sdpa")
        try:
            plain = tiny.model(input_ids=ids).logits
        finally:
            packed.enable(tiny.model)
    assert torch.equal(routed, plain)


def test_the_portable_attention_matches_the_cpu_kernel():
    """Off CPU, packed attention runs on plain tensor operations: they must give the fused
    kernel's output and log-sum-exp (grouped queries, a mask hiding some keys)."""
    import torch

    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 3, 10, 16), torch.randn(2, 3, 7, 16),
                         torch.randn(2, 3, 7, 16))
    allowed = torch.rand(2, 1, 10, 7) > 0.3
    allowed[..., 0] = True
    mask = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))
    fused = packed.attention_with_lse(query, key, value, mask, 0.25)
    portable = packed.attention_with_lse_reference(query, key, value, mask, 0.25)
    for a, b in zip(fused, portable):
        assert torch.allclose(a, b, atol=1e-5)
