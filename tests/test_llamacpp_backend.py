"""The llama.cpp backend (llama.cpp computes the logits, our loop chooses the tokens) gives the
transformers backend's greedy answers on the same tiny model exported to an f32 GGUF; its
constrained answers are valid; a shared prompt prefix, a batch and fast-forward leave answers
unchanged; and without llama.cpp, 'auto' falls back to transformers with a notice.

A tiny random LLaMA model with SmolLM2's tokenizer: llama.cpp's converter needs a tokenizer it
knows, and it knows SmolLM2's."""

from __future__ import annotations

import json

import pytest

from extraction import models, prompting
from extraction.decoding import generation
from extraction.decoding.batched import BatchDecoder
from extraction.errors import ConfigError
from extraction.models import gguf, llamacpp
from extraction.schemas import get_schema
from tests.conftest import tiny_model_folder

TEXTS = ["Mn-doped ZnO.", "Nothing here at all, just a longer sentence about furnaces.",
         "Er3+ and Yb3+ co-doped NaYF4 nanocrystals.", "Ga:ZnO"]

needs_llama_cpp = pytest.mark.skipif(
    not llamacpp.available() or gguf.converter_path() is None,
    reason="llama-cpp-python or llama.cpp's GGUF converter is not installed (scripts/setup.sh "
           "installs both)")


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """One tiny model, loaded by each backend (the llama.cpp one keeps no torch weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    smollm2_dir = models.resolve_model_dir("smollm2-135m")[1]
    folder = tiny_model_folder("llama", smollm2_dir, tmp_path_factory.mktemp("llamacpp"))
    # A random 32-wide model's next-token distribution is nearly flat over 49k tokens, so
    # f16 rounding would flip near-ties; sharper logits (a larger tied head) keep greedy
    # answers comparable.
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(8.0)
    model.save_pretrained(folder)
    with pytest.MonkeyPatch.context() as patch:  # the test's GGUF stays out of the user cache
        patch.setenv("MATEXTRACT_HOME", str(tmp_path_factory.mktemp("home")))
        fast = models.load(str(folder), device="cpu", precision="float32", backend="llamacpp")
    plain = models.load(str(folder), device="cpu", precision="float32", backend="transformers")
    yield plain, fast
    models.unload(fast)
    models.unload(plain)


def _prompts(loaded, spec):
    return [prompting.render(loaded.tokenizer, prompting.build_messages(spec, text))
            for text in TEXTS]


@needs_llama_cpp
@pytest.mark.parametrize("constrained", [True, False])
def test_llamacpp_gives_the_transformers_answers(backends, constrained):
    plain, fast = backends
    assert fast.engine is not None and fast.precision == "f32"
    spec = get_schema("doping")
    answers = {}
    for loaded in (plain, fast):
        constraint = generation.JsonConstraint(loaded, spec.json_schema()) if constrained \
            else None
        prefix = generation.PrefixCache(loaded, prompting.fixed_prefix(loaded.tokenizer, spec))
        answers[loaded.backend] = generation.generate_many(
            loaded, _prompts(loaded, spec), constraint=constraint, max_new_tokens=80,
            prefix=prefix, fast_forward=True)
    ours, theirs = answers["llamacpp"], answers["transformers"]
    assert [g.token_ids for g in ours] == [g.token_ids for g in theirs]
    assert [g.finish_reason for g in ours] == [g.finish_reason for g in theirs]
    # The same tokens, the same probabilities up to kernel rounding (float32 throughout).
    for mine, reference in zip(ours, theirs):
        assert mine.token_logprobs == pytest.approx(reference.token_logprobs, rel=0.01,
                                                    abs=0.002)
    if constrained:
        assert sum(g.forced_tokens for g in theirs) > 0  # what llama.cpp decoded, one by one
        assert sum(g.forced_tokens for g in ours) == 0
        for g in ours:  # every answer is the schema's JSON
            if g.finish_reason == "complete":
                spec.model.model_validate(json.loads(g.text))


@needs_llama_cpp
def test_prefix_sharing_and_batching_leave_answers_unchanged(backends):
    _, fast = backends
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(fast, spec.json_schema())
    prompts = _prompts(fast, spec)
    prefix = generation.PrefixCache(fast, prompting.fixed_prefix(fast.tokenizer, spec))
    shared = generation.generate_many(fast, prompts, constraint=constraint, max_new_tokens=80,
                                      prefix=prefix, fast_forward=True)
    whole = generation.generate_many(fast, prompts, constraint=constraint, max_new_tokens=80,
                                     fast_forward=False)
    alone = [generation.generate(fast, prompt, constraint=constraint, max_new_tokens=80,
                                 prefix=prefix) for prompt in prompts]
    assert all(g.reused_prefix_tokens == len(prefix.ids) for g in shared)
    assert all(g.reused_prefix_tokens == 0 for g in whole)
    assert [g.token_ids for g in shared] == [g.token_ids for g in whole] \
        == [g.token_ids for g in alone]
    # Rows finished apart (some left the batch early) and the engine kept only the prefix.
    assert len({len(g.token_ids) for g in shared}) > 1
    assert fast.engine.prefix_ids == prefix.ids


@needs_llama_cpp
def test_fast_forward_through_llamacpp_verifies_and_rolls_back(backends):
    """Off by default on llama.cpp (slower there), fast-forward still gives the same answers:
    rejected forced tokens are removed from their sequence, rows renumbered as others end."""
    _, fast = backends
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(fast, spec.json_schema())
    prompts = _prompts(fast, spec)
    plain = generation.generate_many(fast, prompts, constraint=constraint, max_new_tokens=80)
    decoder = BatchDecoder(fast, constraint, max_new_tokens=80, stop_at_json_end=True,
                           fast_forward=True, stop_ids=generation._stop_ids(fast))
    rows = [decoder.new_row(fast.tokenizer(p, add_special_tokens=False)["input_ids"], 0)
            for p in prompts]
    decoder.run(rows, None)
    assert [row.generated for row in rows] == [g.token_ids for g in plain]
    assert sum(row.forced_kept for row in rows) > 0
    assert sum(row.forward_passes for row in rows) < sum(len(g.token_ids) for g in plain)


@needs_llama_cpp
def test_constrained_answers_are_valid_even_at_the_budget(backends):
    """A budget too short for a free answer: closing mode still ends every answer validly."""
    _, fast = backends
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(fast, spec.json_schema())
    outs = generation.generate_many(fast, _prompts(fast, spec), constraint=constraint,
                                    max_new_tokens=constraint.reserve + 4, fast_forward=True)
    for g in outs:
        spec.model.model_validate(json.loads(g.text))


def test_auto_falls_back_to_transformers_without_llama_cpp(monkeypatch, capsys):
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    assert models.resolve_backend("auto", "cpu") == "transformers"
    assert "llama.cpp backend unavailable" in capsys.readouterr().err
    assert models.resolve_backend("transformers", "cpu") == "transformers"
    with pytest.raises(ConfigError, match="needs llama-cpp-python"):
        models.resolve_backend("llamacpp", "cpu")
    with pytest.raises(ConfigError, match="unknown backend"):
        models.resolve_backend("vllm", "cpu")


def test_auto_means_llamacpp_on_cpu_when_installed(monkeypatch, tmp_path):
    converter = tmp_path / "convert_hf_to_gguf.py"
    converter.write_text("")
    monkeypatch.setenv(gguf.CONVERTER_ENV, str(converter))
    monkeypatch.setattr(llamacpp, "available", lambda: True)
    assert models.resolve_backend("auto", "cpu") == "llamacpp"
    monkeypatch.delenv(gguf.CONVERTER_ENV)
    monkeypatch.setattr(gguf, "CONVERTER_DIR", tmp_path / "nowhere")
    assert models.resolve_backend("auto", "cpu") == "transformers"


def test_gguf_names_change_with_the_adapter(tmp_path):
    model, adapter = tmp_path / "model", tmp_path / "adapter"
    model.mkdir()
    adapter.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (adapter / "adapter_model.safetensors").write_bytes(b"lora")
    before = gguf.gguf_key(str(model), str(adapter), "q8_0")
    assert before != gguf.gguf_key(str(model), None, "q8_0")
    assert before != gguf.gguf_key(str(model), str(adapter), "f16")
    (adapter / "adapter_model.safetensors").write_bytes(b"lora, trained further")
    assert before != gguf.gguf_key(str(model), str(adapter), "q8_0")


def test_auto_falls_back_with_the_precision_asked_for(tiny_model_dirs):
    """An architecture llama.cpp does not run (OPT) decodes with transformers, int8 as asked."""
    opt = models.load(str(tiny_model_dirs["opt"]), device="cpu", precision="int8",
                      backend="auto")
    assert (opt.backend, opt.precision, opt.engine) == ("transformers", "int8", None)


def test_a_fallback_notice_goes_to_the_sink_given_and_nowhere_else(tiny_model_dirs,
                                                                    monkeypatch, capsys):
    """batch --log-json sends notices as JSON events: the loader must not print them too."""
    from extraction.models import loading

    monkeypatch.setattr(loading, "_NOTICES", set())  # notices are once per process
    monkeypatch.setattr(loading, "_LOADED", {})  # a cached model would skip the notice
    seen: list[str] = []
    with loading.notices_to(seen.append):
        opt = models.load(str(tiny_model_dirs["opt"]), device="cpu", backend="auto")
    assert opt.backend == "transformers"
    assert len(seen) == 1 and "decoding with transformers" in seen[0]
    assert "decoding with transformers" not in capsys.readouterr().err
    monkeypatch.setattr(loading, "_NOTICES", set())
    monkeypatch.setattr(loading, "_LOADED", {})
    models.load(str(tiny_model_dirs["opt"]), device="cpu", backend="auto")
    assert seen[0] in capsys.readouterr().err  # outside the block: printed as before


@needs_llama_cpp
def test_a_failed_conversion_falls_back_with_the_precision_asked_for(tiny_model_dirs,
                                                                     monkeypatch, tmp_path):
    """The tiny LLaMA's own tokenizer is one llama.cpp's converter does not know."""
    monkeypatch.setenv("MATEXTRACT_HOME", str(tmp_path))
    llama = models.load(str(tiny_model_dirs["llama"]), device="cpu", precision="int8",
                        backend="auto")
    assert (llama.backend, llama.precision, llama.engine) == ("transformers", "int8", None)
    with pytest.raises(ConfigError, match="converter failed"):
        models.load(str(tiny_model_dirs["llama"]), device="cpu", precision="float32",
                    backend="llamacpp")


@needs_llama_cpp
@pytest.mark.parametrize("precision,gguf_type", [("int8", "q8_0"), ("int4", "q4_k_m")])
def test_weight_only_quantized_model_runs_the_whole_pipeline(backends, tmp_path, monkeypatch,
                                                             precision, gguf_type):
    """int8 (Q8_0) and int4 (Q4_K_M, quantized by llama.cpp from the f32 GGUF): documents
    decoded together in packed batches, every answer the schema's valid JSON, and the
    quantized weights smaller than the f32 ones."""
    from extraction.pipeline import Extractor, ExtractorConfig
    from extraction.types import Document

    _, fast = backends
    # the module's home, where the f32 GGUF the quantizer starts from already is
    monkeypatch.setenv("MATEXTRACT_HOME", str(fast.engine.gguf.parent.parent))
    quantized = models.load(fast.model.name_or_path, device="cpu", precision=precision,
                            backend="llamacpp")
    try:
        assert (quantized.backend, quantized.precision) == ("llamacpp", gguf_type)
        assert quantized.engine.gguf.name.endswith(f".{gguf_type}.gguf")
        assert quantized.engine.gguf.stat().st_size < fast.engine.gguf.stat().st_size / 2
        extractor = Extractor(ExtractorConfig(schema_name="doping", max_attempts=1,
                                              max_new_tokens=64, batch_size=4,
                                              backend="llamacpp", precision=precision),
                              loaded=quantized)
        results = list(extractor.extract_many(
            [Document.from_text(text, source=f"doc{i}") for i, text in enumerate(TEXTS)]))
        assert [r.source for r in results] == [f"doc{i}" for i in range(len(TEXTS))]
        spec = get_schema("doping")
        for result in results:
            attempt = result.trace[0]["attempts"][0]
            assert attempt["generation"]["batch_rows"] == len(TEXTS)
            spec.model.model_validate(json.loads(attempt["raw"]))
    finally:
        models.unload(quantized)


@needs_llama_cpp
def test_llamacpp_process_keeps_one_copy_of_the_weights(backends):
    """The GGUF holds the weights; the transformers model keeps only its shapes and config."""
    plain, fast = backends
    assert all(p.device.type == "meta" for p in fast.model.parameters())
    assert all(p.device.type == "cpu" for p in plain.model.parameters())
    assert generation._tokenizer_info(fast).vocab_size == plain.model.config.vocab_size
