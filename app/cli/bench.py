"""``matextract bench``: extraction speed at equal accuracy, and what the machine allows, in one
run. Writes bench.json and bench.md into --out and prints the markdown."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Optional

import typer

from app.cli.options import config_command, option_specs
from bench.llamacpp_server import LlamaCppOptions
from extraction.storage.fileio import write_atomic

LLAMA_CPP_NOTE = ("No llama.cpp row in this run: pass --llama-cpp-gguf with --llama-server "
                  "(scripts/build_llama_server.sh builds it) and/or llama-cpp-python (compiles "
                  "from source in ~15 min on 2 cores).")


@config_command(command="bench", llama_cpp=LlamaCppOptions)
def bench_command(
    llama_cpp: LlamaCppOptions,
    model: Annotated[str, typer.Option(help="registry name or local model folder")]
    = "smollm2-135m",
    task: Annotated[str, typer.Option(help="eval task whose texts are extracted")] = "doping",
    limit: Annotated[Optional[int], typer.Option(help="only the first N texts (quick run)")]
    = None,
    out: Annotated[Path, typer.Option(help="folder for bench.json and bench.md")]
    = Path("bench-results"),
    index: Annotated[bool, typer.Option(help="also HNSW vs exact search and embedding speed")]
    = True,
) -> None:
    """Records/min and F1 of a plain generate loop vs our configurations; time to first token
    with and without prefix reuse; constraint cost; forward passes saved by fast-forward;
    memory-bandwidth floor; HNSW vs exact search; embedding speed; llama.cpp side by side,
    one stream and served by llama-server."""
    import torch

    from bench import extraction_speed, machine
    from eval.tasks import load_task
    from extraction import models

    loaded_task = load_task(task)
    report: dict[str, Any] = {
        "command": " ".join(["matextract", "bench", "--model", model, "--task", task]
                            + (["--limit", str(limit)] if limit else [])
                            + ([] if index else ["--no-index"])
                            + option_args(llama_cpp)),
        "written": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine()},
    }
    report["machine"]["read_bandwidth_gbps"] = round(machine.read_bandwidth_gbps(), 2)
    typer.echo(f"bandwidth {report['machine']['read_bandwidth_gbps']} GB/s", err=True)
    report["machine"]["matmul_gflops"] = round(machine.matmul_gflops(), 1)
    typer.echo(f"fp32 matmul {report['machine']['matmul_gflops']} GFLOP/s", err=True)

    floors = {}
    for precision in ("float32", "int8"):
        loaded = models.load(model, precision=precision)
        weights = machine.weight_bytes(loaded.model)
        floors[precision] = {"weight_bytes": weights, "floor_tokens_per_second": round(
            machine.decode_floor_tokens_per_second(
                report["machine"]["read_bandwidth_gbps"], weights), 1)}
        if precision == "float32":
            base_shots = loaded_task.few_shot
            report["ttft_few_shot_prompt"] = extraction_speed.time_to_first_token(
                loaded, loaded_task, examples=base_shots)
            report["ttft_zero_shot_prompt"] = extraction_speed.time_to_first_token(
                loaded, loaded_task, examples=())
        models.unload(loaded)
    report["floors"] = floors
    typer.echo("ttft done", err=True)

    report["settings"] = extraction_speed.measure_settings(
        loaded_task, model=model, limit=limit, llama_cpp=llama_cpp)
    if index:
        report["index"] = _index_figures()
        report["embedding"] = _embedding_figures(loaded_task)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "bench.json", json.dumps(report, indent=1, default=str))
    markdown = render(report)
    write_atomic(out / "bench.md", markdown)
    typer.echo(markdown)


def _index_figures() -> dict[str, Any]:
    from bench.bench_index import bench

    args = SimpleNamespace(n=20000, queries=200, dim=384, seed=0, k=10, single=100, M=16,
                           ef_construction=200, ef_search=[32, 64, 128])
    return bench("clustered", args)


def _embedding_figures(task: Any) -> dict[str, Any]:
    from extraction.retrieval.embeddings import Embedder

    embedder = Embedder()
    texts = [e.text for e in task.examples] * 4
    embedder.embed(texts[:8])  # warm-up
    started = time.perf_counter()
    embedder.embed(texts, batch_size=32)
    seconds = time.perf_counter() - started
    return {"model": embedder.name, "chunks": len(texts),
            "chunks_per_second": round(len(texts) / seconds, 1)}


def render(report: dict[str, Any]) -> str:
    """The markdown for BENCHMARKS.md (pure)."""
    settings = report["settings"]
    plain = settings[0]
    lines = [f"Command: `{report['command']}` ({report['written']}; "
             f"{report['machine']['cpus']} CPUs, {report['machine']['torch_threads']} torch "
             f"threads; measured read bandwidth {report['machine']['read_bandwidth_gbps']} GB/s"
             f", fp32 matmul {report['machine'].get('matmul_gflops', '?')} GFLOP/s)",
             "",
             "| configuration | records/min | vs plain | strict triplet F1 | host F1 | dopant F1 "
             "| parse | s/record | tok/s (aggregate) | passes/token | grammar share |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in settings:
        strict = row.get("strict") or {}
        fields = strict.get("fields", {})
        tokens = row.get("generated_tokens") or 0
        gen_s = row.get("generation_seconds") or 0.0
        lines.append("| " + " | ".join([
            row["label"], f"{row['records_per_minute']:.1f}",
            f"{row['records_per_minute'] / plain['records_per_minute']:.2f}x",
            _f(row["headline_f1"]["strict"]), _f(fields.get("hosts", {}).get("f1")),
            _f(fields.get("dopants", {}).get("f1")), _f(row.get("parse_rate")),
            _f(row.get("seconds_per_example"), 2),
            _f(tokens / gen_s if gen_s else None, 1),
            _f(row["forward_passes"] / tokens if row["forward_passes"] and tokens else None, 2),
            _f(row["grammar_seconds"] / gen_s if row["forward_passes"] and gen_s else None)])
            + " |")
    if not any("llama_cpp" in row["options"] for row in settings):
        lines += ["", LLAMA_CPP_NOTE]
    lines += [""]
    lines += ["| time to first token | prefix tokens | plain ms | reused ms | speed-up | "
              "reused, packed step ms | identical outputs (all three) |",
              "|---|---|---|---|---|---|---|"]
    for key, label in (("ttft_few_shot_prompt", "few-shot prompt (base model)"),
                       ("ttft_zero_shot_prompt", "zero-shot prompt (tuned adapter)")):
        t = report[key]
        lines.append(f"| {label} | {t['prefix_tokens']} | {t['ttft_plain_ms']:.0f} | "
                     f"{t['ttft_reused_ms']:.0f} | "
                     f"{t['ttft_plain_ms'] / t['ttft_reused_ms']:.1f}x | "
                     f"{t['ttft_reused_packed_ms']:.0f} | "
                     f"{t['identical_outputs']} |")
    lines += ["", "| precision | weight bytes | bandwidth floor (tok/s, one sequence) |",
              "|---|---|---|"]
    for precision, floor in report["floors"].items():
        lines.append(f"| {precision} | {floor['weight_bytes'] / 1e6:.0f} MB | "
                     f"{floor['floor_tokens_per_second']} |")
    if "index" in report:
        index = report["index"]
        lines += ["", f"HNSW vs exact search ({index['data']} 20k x 384, k=10): exact "
                  f"{index['exact']['single_query_ms']} ms/query, "
                  f"{index['exact']['batch_qps']} QPS batched"]
        for row in index["hnsw"]:
            lines.append(f"- ef={row['ef_search']}: recall@10 {row['recall@10']}, "
                         f"{row['single_query_ms']} ms/query, {row['batch_qps']} QPS batched")
        embedding = report["embedding"]
        lines += ["", f"Embedding ({embedding['model']}): {embedding['chunks_per_second']} "
                  f"chunks/s over {embedding['chunks']} texts"]
    return "\n".join(lines) + "\n"


def option_args(options: Any) -> list[str]:
    """The flags that set an option dataclass away from its defaults (the report's command)."""
    args = []
    for spec in option_specs(type(options)):
        value = getattr(options, spec.name)
        if value == spec.default:
            continue
        if isinstance(value, bool):
            args.append(f"--{spec.cli}" if value else f"--no-{spec.cli}")
        else:
            args += [f"--{spec.cli} {item}" for item in
                     (value if isinstance(value, tuple) else (value,))]
    return args


def _f(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
