"""The two design measurements behind the llama.cpp backend (BENCHMARKS.md, issue 18):

1. one KV stream per sequence vs one unified cache: the time of a 64-row decode step (one
   token a row after a shared 246-token prefix and 50 tokens of each row's own);
2. fast-forward on vs off through llama.cpp: 64 doping test sentences, same answers?

    .venv/bin/python bench/bench_llamacpp_steps.py [--rows 64] [--out FILE.json]

Needs the llama.cpp backend (scripts/setup.sh); smollm2-135m with its doping adapter, Q8_0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.tasks import load_task  # noqa: E402  (after the path: run as a script)
from extraction import prompting  # noqa: E402
from extraction.config import ExtractorConfig  # noqa: E402
from extraction.decoding import generation  # noqa: E402
from extraction.decoding.batched import BatchDecoder  # noqa: E402
from extraction.models.llamacpp import LlamaCppEngine  # noqa: E402
from extraction.pipeline import Extractor  # noqa: E402


def step_milliseconds(gguf: Path, *, unified: bool, rows: int, prefix: int = 246,
                      own: int = 50, steps: int = 12) -> float:
    """Median time of a decode step of ``rows`` tokens, one per sequence."""
    import numpy as np

    engine = LlamaCppEngine(gguf)
    engine.reserve(rows, prefix + own + steps + 1, rows * own)
    if unified:  # the same engine, its context rebuilt with one cache for every sequence
        llama = engine.llama
        engine.close_context()
        params = llama.llama_context_default_params()
        params.n_seq_max, params.n_ctx = rows + 1, engine.sequences * engine.cells_per_sequence
        params.n_batch, params.n_ubatch, params.kv_unified = rows * own, 2048, True
        params.n_threads = params.n_threads_batch = engine.threads
        params.flash_attn_type = llama.LLAMA_FLASH_ATTN_TYPE_ENABLED
        engine.context = llama.llama_init_from_model(engine.model, params)
    rng = np.random.default_rng(0)
    engine.ensure_prefix([int(t) for t in rng.integers(100, 40000, prefix)])
    for sequence in range(1, rows + 1):
        engine.share_prefix(sequence)
    engine.decode([(s, prefix, [int(t) for t in rng.integers(100, 40000, own)], 1)
                   for s in range(1, rows + 1)])
    times = []
    for step in range(steps):
        started = time.perf_counter()
        engine.decode([(s, prefix + own + step, [int(rng.integers(100, 40000))], 1)
                       for s in range(1, rows + 1)])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def fast_forward_seconds(rows: int) -> dict[str, float | bool]:
    """Seconds for ``rows`` doping sentences through llama.cpp, without and with
    fast-forward (after a warm-up batch), and whether the answers agree."""
    config = ExtractorConfig(model="smollm2-135m", schema_name="doping", backend="llamacpp",
                             batch_size=rows, max_attempts=1)
    extractor = Extractor(config)
    loaded, spec = extractor.loaded, extractor.spec
    prefix = generation.PrefixCache(loaded, prompting.fixed_prefix(
        loaded.tokenizer, spec, examples=extractor.examples))
    prompts = [prompting.render(loaded.tokenizer, prompting.build_messages(
        spec, example.text, examples=extractor.examples))
        for example in load_task("doping").examples[:rows]]
    budget = config.max_new_tokens
    generation.generate_many(loaded, prompts, constraint=extractor.constraint,
                             max_new_tokens=budget, prefix=prefix)
    calls = loaded.engine.decode_calls
    started = time.perf_counter()
    plain = generation.generate_many(loaded, prompts, constraint=extractor.constraint,
                                     max_new_tokens=budget, prefix=prefix)
    without = time.perf_counter() - started
    steps = loaded.engine.decode_calls - calls
    decoder = BatchDecoder(loaded, extractor.constraint, max_new_tokens=budget,
                           stop_at_json_end=True, fast_forward=True,
                           stop_ids=generation._stop_ids(loaded))
    start = len(prefix.ids)
    rows_ = [decoder.new_row(loaded.tokenizer(p, add_special_tokens=False)["input_ids"][start:],
                             start) for p in prompts]
    started = time.perf_counter()
    decoder.run(rows_, prefix)
    with_ff = time.perf_counter() - started
    tokens = sum(len(g.token_ids) for g in plain)
    prompt_tokens = sum(g.prompt_tokens - g.reused_prefix_tokens for g in plain)
    return {"without_fast_forward_s": round(without, 2), "with_fast_forward_s": round(with_ff, 2),
            "steps_without_fast_forward": steps, "generated_tokens": tokens,
            "prompt_tokens_after_prefix": prompt_tokens,
            "same_answers": [r.generated for r in rows_] == [g.token_ids for g in plain]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    figures = fast_forward_seconds(args.rows)
    gguf = Extractor(ExtractorConfig(model="smollm2-135m", schema_name="doping",
                                     backend="llamacpp")).loaded.engine.gguf
    for unified in (False, True):
        key = "unified_cache_step_ms" if unified else "stream_per_sequence_step_ms"
        figures[key] = round(step_milliseconds(gguf, unified=unified, rows=args.rows), 1)
    record = {"command": " ".join([".venv/bin/python", "bench/bench_llamacpp_steps.py",
                                   *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "rows": args.rows, **figures}
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
