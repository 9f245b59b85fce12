"""Cost of copy-constrained (extractive) values: grammar share of generation time and
records/min, with and without ``sources``, on NERRE doping test sentences.

    .venv/bin/python bench/bench_extractive.py [--sentences 64] [--batch 32] [--repeats 2]
        [--model smollm2-135m] [--adapter doping-smollm2] [--out FILE.json]

Both modes decode the same sentences with the same prompt (the adapter's), prefix cache,
packed batches and fast-forward, alternating mode per repeat so that drifting machine load
hits both alike. ``grammar_seconds`` is every row's time in the grammar: xgrammar's mask,
the copy constraint's mask, accepting tokens and fast-forward proposals. Also reported: the
one-time costs (vocabulary index, a source's tables and first-token set), the share of
values grounding finds, and entity-level P/R/F1 of hosts and dopants against the gold.

Prints a JSON record and a markdown table; ``--out`` also saves the JSON with the command.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extraction import models, prompting  # noqa: E402  (after the path: run as a script)
from extraction.checking.grounding import Grounder  # noqa: E402
from extraction.datasets.nerre import load_doping_sentences  # noqa: E402
from extraction.decoding import extractive, generation  # noqa: E402
from extraction.decoding import token_index as token_index_module  # noqa: E402
from extraction.schemas import get_schema  # noqa: E402
from extraction.schemas.base import string_leaves  # noqa: E402
from extraction.types import Document  # noqa: E402

MAX_NEW_TOKENS = 384  # the pipeline's default budget


def decode(loaded: Any, constraint: Any, prefix: Any, prompts: list[str], texts: list[str],
           *, batch: int, copied: bool) -> dict[str, Any]:
    started = time.perf_counter()
    outs = []
    for first in range(0, len(prompts), batch):
        outs += generation.generate_many(
            loaded, prompts[first:first + batch], constraint=constraint,
            max_new_tokens=MAX_NEW_TOKENS, prefix=prefix, fast_forward=True, packed=True,
            sources=texts[first:first + batch] if copied else None)
    seconds = time.perf_counter() - started
    tokens = sum(len(out.token_ids) for out in outs)
    grammar = sum(out.grammar_seconds for out in outs)
    return {"seconds": seconds, "grammar_seconds": grammar, "new_tokens": tokens,
            "forced_tokens": sum(out.forced_tokens for out in outs),
            "relaxed_steps": sum(out.extractive_relaxed for out in outs),
            "finish": {reason: sum(out.finish_reason == reason for out in outs)
                       for reason in ("complete", "stop", "length")},
            "texts": [out.text for out in outs]}


def quality(spec: Any, sentences: list[Any], answers: list[str]) -> dict[str, Any]:
    """Share of extractive values grounding finds; entity P/R/F1 (exact strings) vs gold."""
    paths = spec.extractive_paths()
    found = values = true_pos = predicted = gold_total = 0
    for sentence, answer in zip(sentences, answers):
        try:
            record = json.loads(answer)
        except json.JSONDecodeError:
            record = {}
        grounder = Grounder(Document.from_text(sentence.text))
        for path, value in string_leaves(record):
            if re.sub(r"\[\d+\]", "[]", path) in paths:
                values += 1
                found += bool(grounder.locate(value))
        ours = {("host", h) for h in record.get("hosts", [])} \
            | {("dopant", d) for d in record.get("dopants", [])}
        gold = {("host", h) for h in sentence.gold.basemats.values()} \
            | {("dopant", d) for d in sentence.gold.dopants.values()}
        true_pos += len(ours & gold)
        predicted += len(ours)
        gold_total += len(gold)
    precision = true_pos / predicted if predicted else 0.0
    recall = true_pos / gold_total if gold_total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"values": values, "grounded": found / values if values else 1.0,
            "entity_precision": precision, "entity_recall": recall, "entity_f1": f1}


def one_time_costs(constraint: Any, texts: list[str]) -> dict[str, Any]:
    """Index of the vocabulary (once per tokenizer), a source's tables and first tokens
    (once per unit text and field kind), a mid-value step."""
    token_index_module._INDEXES.clear()
    started = time.perf_counter()
    index = token_index_module.token_index(constraint._info)
    index_s = time.perf_counter() - started
    source_s, start_s, step_s, steps = [], [], [], 0
    for text in texts:
        started = time.perf_counter()
        source = extractive.CopySource(text, ignore_case=False, index=index)
        source_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        _, after, _ = source.first(48)
        start_s.append(time.perf_counter() - started)
        for states in list(after.values())[:20]:
            started = time.perf_counter()
            source.explore(states, 48)
            step_s.append(time.perf_counter() - started)
            steps += 1
    mean = lambda xs: 1e6 * sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return {"vocabulary_index_s": index_s, "tokens": len(index.token_bytes),
            "source_tables_us": mean(source_s), "first_token_set_us": mean(start_s),
            "mid_value_step_us": mean(step_s), "mean_unit_chars": sum(map(len, texts))
            / len(texts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--adapter", default="doping-smollm2")
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    loaded = models.load(args.model, adapter=args.adapter)
    spec = get_schema("doping")
    few_shot = models.adapter_card(args.adapter).get("inference", {}).get("few_shot")
    examples = spec.examples if few_shot is None else spec.examples[:few_shot]
    sentences = load_doping_sentences("test")[:args.sentences]
    texts = [s.text for s in sentences]
    prompts = [prompting.render(loaded.tokenizer, prompting.build_messages(
        spec, text, examples=examples)) for text in texts]
    prefix = generation.PrefixCache(loaded, prompting.fixed_prefix(loaded.tokenizer, spec,
                                                                   examples=examples))
    constraint = generation.JsonConstraint(loaded, spec.json_schema())
    costs = one_time_costs(constraint, texts)
    decode(loaded, constraint, prefix, prompts[:4], texts[:4], batch=4, copied=True)  # warm

    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "extractive": []}
    for repeat in range(args.repeats):
        order = ("plain", "extractive") if repeat % 2 == 0 else ("extractive", "plain")
        for mode in order:
            runs[mode].append(decode(loaded, constraint, prefix, prompts, texts,
                                     batch=args.batch, copied=mode == "extractive"))
    rows = {}
    for mode, results in runs.items():
        seconds = sum(r["seconds"] for r in results)
        grammar = sum(r["grammar_seconds"] for r in results)
        tokens = sum(r["new_tokens"] for r in results)
        rows[mode] = {
            "records_per_minute": 60 * len(texts) * len(results) / seconds,
            "grammar_share": grammar / seconds,
            "grammar_us_per_token": 1e6 * grammar / tokens,
            "new_tokens": tokens // len(results),
            "forced_tokens": results[0]["forced_tokens"],
            "relaxed_steps": results[0]["relaxed_steps"],
            "finish": results[0]["finish"],
            "seconds_per_repeat": [round(r["seconds"], 2) for r in results],
            **quality(spec, sentences, results[0]["texts"])}
    report = {
        "command": "python " + shlex.join(sys.argv),
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "model": args.model, "adapter": args.adapter, "sentences": len(texts),
        "batch": args.batch, "packed": True, "fast_forward": True,
        "max_new_tokens": MAX_NEW_TOKENS, "repeats": args.repeats,
        "one_time": costs, "modes": rows,
        "records_per_minute_ratio": rows["extractive"]["records_per_minute"]
        / rows["plain"]["records_per_minute"]}
    print(json.dumps(report, indent=2))
    print(markdown(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def markdown(report: dict[str, Any]) -> str:
    lines = [f"`{report['command']}`", "",
             "| mode | records/min | grammar share | grammar us/token | new tokens | "
             "grounded values | entity F1 |", "|---|---|---|---|---|---|---|"]
    for mode, row in report["modes"].items():
        lines.append(f"| {mode} | {row['records_per_minute']:.1f} | "
                     f"{100 * row['grammar_share']:.2f}% | {row['grammar_us_per_token']:.0f} | "
                     f"{row['new_tokens']} | {100 * row['grounded']:.1f}% | "
                     f"{row['entity_f1']:.3f} |")
    once = report["one_time"]
    lines += ["", f"One-time: vocabulary index {once['vocabulary_index_s']:.2f} s "
                  f"({once['tokens']} tokens); per unit ({once['mean_unit_chars']:.0f} chars): "
                  f"tables {once['source_tables_us']:.0f} us, first-token set "
                  f"{once['first_token_set_us']:.0f} us; mid-value step "
                  f"{once['mid_value_step_us']:.0f} us."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
