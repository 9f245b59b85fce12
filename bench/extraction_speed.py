"""Records per minute at equal accuracy: a plain ``model.generate`` loop against our pipeline's
configurations, on the same benchmark texts, model and prompt, scored the same way."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.report import summarise
from eval.runner import RESULT_KEYS, run_grid, run_id
from eval.tasks import Task
from extraction import prompting
from extraction.decoding import generation
from extraction import models
from extraction.models import LoadedModel
from bench.answers import answer_line, pipeline_prompts
from bench.llamacpp_loop import llama_cpp_loop
from bench.llamacpp_server import LlamaCppOptions, ServerOptions, llama_server_loop
from extraction.errors import MatextractError
from extraction.pipeline import ExtractorConfig
from extraction.schemas import get_schema
from extraction.storage.jsonl import read_jsonl


@dataclass(frozen=True)
class Setting:
    """One configuration of the comparison."""

    label: str
    # ExtractorConfig fields over the defaults (extractive values on); {} for the plain loop
    options: dict[str, Any]
    plain: bool = False


TRANSFORMERS = {"backend": "transformers"}
LLAMACPP = {"backend": "llamacpp"}

SETTINGS = (
    Setting("plain `generate` loop (fp32, batch 1, unconstrained)", {}, plain=True),
    Setting("ours, transformers: constrained, batch 1",
            {**TRANSFORMERS, "batch_size": 1, "fast_forward": False, "max_attempts": 1}),
    Setting("ours, transformers: + fast-forward",
            {**TRANSFORMERS, "batch_size": 1, "max_attempts": 1}),
    Setting("ours, transformers: + batch 16, padded",
            {**TRANSFORMERS, "batch_size": 16, "max_attempts": 1, "packed_batches": False}),
    Setting("ours, transformers: + packed, batch 8",
            {**TRANSFORMERS, "batch_size": 8, "max_attempts": 1}),
    Setting("ours, transformers: + packed, batch 16",
            {**TRANSFORMERS, "batch_size": 16, "max_attempts": 1}),
    Setting("ours, transformers: + packed, batch 32",
            {**TRANSFORMERS, "batch_size": 32, "max_attempts": 1}),
    Setting("ours, transformers: + packed, batch 64",
            {**TRANSFORMERS, "batch_size": 64, "max_attempts": 1}),
    Setting("ours, transformers: packed batch 32, extractive off",
            {**TRANSFORMERS, "batch_size": 32, "max_attempts": 1, "extractive": False}),
    Setting("ours, transformers: packed batch 32, unconstrained",
            {**TRANSFORMERS, "batch_size": 32, "max_attempts": 1, "constrained": False}),
    Setting("ours, transformers: packed batch 32, int8 (dynamic)",
            {**TRANSFORMERS, "batch_size": 32, "max_attempts": 1, "precision": "int8"}),
    Setting("ours, llama.cpp Q8_0: batch 1", {**LLAMACPP, "batch_size": 1, "max_attempts": 1}),
    Setting("ours, llama.cpp Q8_0: batch 16", {**LLAMACPP, "batch_size": 16, "max_attempts": 1}),
    Setting("ours, llama.cpp Q8_0: batch 32", {**LLAMACPP, "batch_size": 32, "max_attempts": 1}),
    Setting("ours, llama.cpp Q8_0: batch 64", {**LLAMACPP, "batch_size": 64, "max_attempts": 1}),
    Setting("ours, llama.cpp f32: batch 64",
            {**LLAMACPP, "batch_size": 64, "max_attempts": 1, "precision": "float32"}),
    Setting("ours: default pipeline (llama.cpp Q8_0 where installed, batch 32, attempts "
            "from the card)", {}),
)


def plain_generate_loop(task: Task, loaded: LoadedModel, config: ExtractorConfig,
                        limit: int | None) -> list[dict[str, Any]]:
    """``model.generate`` one text at a time with the pipeline's prompt: the baseline."""
    import torch

    tokenizer, spec = loaded.tokenizer, get_schema(task.schema)
    lines = []
    for example, ids in zip(task.examples, pipeline_prompts(config, task, tokenizer, limit)):
        started = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(torch.tensor([ids], device=loaded.device),
                                        attention_mask=torch.ones(1, len(ids), dtype=torch.long,
                                                                  device=loaded.device),
                                        max_new_tokens=config.max_new_tokens,
                                        do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id
                                        or tokenizer.eos_token_id)
        seconds = time.perf_counter() - started
        new = out[0, len(ids):]
        lines.append(answer_line(task, spec, example,
                                 tokenizer.decode(new, skip_special_tokens=True),
                                 seconds=seconds, new_tokens=int(new.numel())))
    return lines


def measure_settings(task: Task, *, model: str, limit: int | None,
                     settings: tuple[Setting, ...] = SETTINGS,
                     llama_cpp: LlamaCppOptions | None = None) -> list[dict[str, Any]]:
    """Every setting on the same texts, in one process; one summary row per setting, then the
    llama.cpp rows. Model loading is outside every figure (each setting loads its model
    before timing)."""
    rows = []
    unavailable = llamacpp_unavailable(model, task.schema)
    with tempfile.TemporaryDirectory(prefix="matextract-bench-") as folder:
        for setting in settings:
            if unavailable and setting.options.get("backend") == "llamacpp":
                print(f"skipped {setting.label!r}: {unavailable}", file=sys.stderr)
                continue
            config = ExtractorConfig(model=model, schema_name=task.schema, **setting.options)
            if setting.plain:
                loaded = models.load(config.model, precision=config.precision,
                                     adapter=config.adapter)
                lines = plain_generate_loop(task, loaded, config, limit)
                models.unload(loaded)
            else:
                run_grid(task, [(config, setting.options)], out=Path(folder), limit=limit,
                         progress=False)
                lines = read_jsonl(
                    Path(folder) / f"{run_id(task.name, config, setting.options)}.jsonl",
                    required=RESULT_KEYS).rows
            rows.append(_row(task, model, setting.label, setting.options, lines))
    if llama_cpp is not None:
        rows += llama_cpp_rows(task, model=model, limit=limit, options=llama_cpp)
    return rows


def llamacpp_unavailable(model: str, schema: str) -> str | None:
    """Why the llama.cpp backend cannot run ``model`` here (None: it can). Its rows are then
    left out of the bench instead of failing it (e.g. a model whose tokenizer llama.cpp's
    converter does not know)."""
    config = ExtractorConfig(model=model, schema_name=schema, **LLAMACPP)
    try:
        models.load(config.model, adapter=config.adapter, backend="llamacpp")
    except MatextractError as exc:
        return exc.message
    return None


def llama_cpp_rows(task: Task, *, model: str, limit: int | None,
                   options: LlamaCppOptions) -> list[dict[str, Any]]:
    """Per GGUF: the single-stream row, then one llama-server row per slot count and mode,
    all with the prompt tokens of our pipeline's one-attempt configuration."""
    if not options.gguf:
        return []
    config = ExtractorConfig(model=model, schema_name=task.schema, max_attempts=1)
    tokenizer = models.load_tokenizer(config.model)
    rows = []
    for gguf in options.gguf:
        if options.single_stream:
            lines = llama_cpp_loop(task, gguf, config, limit, tokenizer=tokenizer,
                                   threads=options.threads, grammar=options.grammar)
            mode = "grammar" if options.grammar else "unconstrained"
            rows.append(_row(task, model, f"llama.cpp single stream ({gguf.name}, {mode}, "
                                          f"{options.threads} threads)",
                             {"llama_cpp": str(gguf), "grammar": options.grammar}, lines))
        for server in options.servers(gguf):
            for json_schema in options.server_modes:
                lines = llama_server_loop(task, config, limit, tokenizer=tokenizer,
                                          options=server, json_schema=json_schema)
                rows.append(_row(task, model, server_label(server, json_schema=json_schema),
                                 {"llama_cpp": str(gguf), "server": str(server.binary),
                                  "parallel": server.parallel, "kv_unified": server.kv_unified,
                                  "json_schema": json_schema}, lines))
    return rows


def server_label(server: ServerOptions, *, json_schema: bool) -> str:
    """``llama-server --parallel 64 (model.gguf, json_schema, 2 threads)``."""
    flags = f"--parallel {server.parallel}" + (" --kv-unified" if server.kv_unified else "")
    mode = "json_schema" if json_schema else "unconstrained"
    return f"llama-server {flags} ({server.gguf.name}, {mode}, {server.threads} threads)"


def _row(task: Task, model: str, label: str, options: dict[str, Any],
         lines: list[dict[str, Any]]) -> dict[str, Any]:
    row = summarise({"task": task.name, "model": {"name": model}}, lines)
    row.update(label=label, options=options,
               records_per_minute=60 * len(lines) / sum(x["seconds"] for x in lines),
               forward_passes=sum(x.get("forward_passes", 0) for x in lines),
               forced_tokens=sum(x.get("forced_tokens", 0) for x in lines),
               grammar_seconds=sum(x.get("grammar_seconds", 0.0) for x in lines),
               generation_seconds=sum(x.get("generation_s", 0.0) for x in lines))
    return row


def time_to_first_token(loaded: LoadedModel, task: Task, *, examples: Any,
                        sentences: int = 8) -> dict[str, Any]:
    """Prefill time with and without the cached prompt prefix, and whether answers match.

    Both through transformers' own attention, so the ratio is prefix reuse alone; the
    pipeline's path (prefix reuse in a packed step) is timed beside them."""
    spec = get_schema(task.schema)
    prefix = generation.PrefixCache(loaded, prompting.fixed_prefix(loaded.tokenizer, spec,
                                                                   examples=examples))
    constraint = generation.JsonConstraint(loaded, spec.json_schema())
    plain_s, reused_s, packed_s, identical = [], [], [], 0
    for example in task.examples[:sentences]:
        prompt = prompting.render(loaded.tokenizer, prompting.build_messages(
            spec, example.text, examples=examples))
        runs = [generation.generate(loaded, prompt, constraint=constraint, max_new_tokens=96,
                                    prefix=cached, packed=packed)
                for cached, packed in ((None, False), (prefix, False), (prefix, True))]
        plain_s.append(runs[0].prefill_seconds)
        reused_s.append(runs[1].prefill_seconds)
        packed_s.append(runs[2].prefill_seconds)
        identical += len({run.text.encode() for run in runs}) == 1
    return {"prefix_tokens": len(prefix.ids), "few_shot_examples": len(examples),
            "ttft_plain_ms": 1000 * sum(plain_s) / len(plain_s),
            "ttft_reused_ms": 1000 * sum(reused_s) / len(reused_s),
            "ttft_reused_packed_ms": 1000 * sum(packed_s) / len(packed_s),
            "identical_outputs": f"{identical}/{len(plain_s)}"}
