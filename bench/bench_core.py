"""Core figures for BENCHMARKS.md: model load time (GGUF vs prepared cache) and decode speed
with and without the schema constraint, measured in one run on this machine.

    .venv/bin/python bench/bench_core.py [--models smollm2-135m gemma3-270m] [--sentences 5]

Prints a JSON record and a markdown table. Load-from-GGUF is measured in a fresh subprocess
so that nothing is cached between the two loads.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GGUF_LOAD = """
import time, torch
from extraction import models
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
from extraction.settings import quiet_libraries
quiet_libraries()
spec = models.get_spec({name!r})
import tempfile, pathlib
with tempfile.TemporaryDirectory() as tmp:
    path = spec.locate_gguf(pathlib.Path(tmp))
    started = time.perf_counter()
    AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                         quantization_config=GgufConfig(dequantize=True))
    print(time.perf_counter() - started)
"""

PREPARED_LOAD = """
import time
from extraction import models
from extraction.settings import quiet_libraries
quiet_libraries()
started = time.perf_counter()
models.load({name!r}, device="cpu")
print(time.perf_counter() - started)
"""


def timed_subprocess(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def decode_speed(name: str, sentences: list[str]) -> dict[str, float]:
    from extraction import prompting
    from extraction.decoding import generation
    from extraction import models
    from extraction.schemas import get_schema

    loaded = models.load(name, device="cpu")
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(loaded, spec.json_schema())
    figures: dict[str, float] = {}
    totals = {label: [0.0, 0.0, 0.0] for label in ("unconstrained", "constrained")}
    for text in sentences:  # the two modes alternate, so background load hits both alike
        prompt = prompting.render(loaded.tokenizer, prompting.build_messages(spec, text))
        for label, active in (("unconstrained", None), ("constrained", constraint)):
            out = generation.generate(loaded, prompt, constraint=active, max_new_tokens=160)
            totals[label][0] += len(out.token_ids)
            totals[label][1] += out.total_seconds - out.prefill_seconds
            totals[label][2] += out.prefill_seconds
    for label, (tokens, seconds, prefill) in totals.items():
        figures[f"{label}_decode_tok_per_s"] = round(tokens / seconds, 2)
        figures[f"{label}_tokens"] = int(tokens)
        figures[f"{label}_prefill_s_mean"] = round(prefill / len(sentences), 3)
    figures["constrained_over_unconstrained"] = round(
        figures["constrained_decode_tok_per_s"] / figures["unconstrained_decode_tok_per_s"], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["smollm2-135m"])
    parser.add_argument("--sentences", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from extraction.datasets.nerre import load_doping_sentences
    from extraction import models

    sentences = [s.text for s in load_doping_sentences("test")[: args.sentences]]
    rows = []
    for name in args.models:
        models.prepare(name)
        row = {"model": name,
               "load_gguf_s": round(timed_subprocess(GGUF_LOAD.format(name=name)), 2),
               "load_prepared_s": round(timed_subprocess(PREPARED_LOAD.format(name=name)), 2)}
        row["load_speedup"] = round(row["load_gguf_s"] / row["load_prepared_s"], 1)
        row.update(decode_speed(name, sentences))
        rows.append(row)
    record = {"command": "python " + " ".join(sys.argv), "machine": platform.processor()
              or platform.machine(), "sentences": args.sentences, "rows": rows}
    print(json.dumps(record, indent=2))
    print("\n| model | load GGUF s | load prepared s | speed-up | decode tok/s unconstrained "
          "| decode tok/s constrained | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['load_gguf_s']} | {r['load_prepared_s']} | "
              f"{r['load_speedup']}x | {r['unconstrained_decode_tok_per_s']} | "
              f"{r['constrained_decode_tok_per_s']} | {r['constrained_over_unconstrained']} |")
    if args.out:
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
