"""The same extraction through llama.cpp (llama-cpp-python), for a side-by-side row.

llama.cpp runs a GGUF file, so the tuned model is first merged with its adapter and
converted (``export_gguf``, with llama.cpp's own ``convert_hf_to_gguf.py``). The loop then
feeds llama.cpp the pipeline's exact prompt tokens, optionally constrains it with a grammar
built from the same JSON schema, and scores its answers like every other row.
llama-cpp-python reuses the KV cache of the longest common prompt prefix between calls, so
it gets prefix reuse too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.answers import answer_line, pipeline_prompts
from eval.tasks import Task
from extraction.errors import ConfigError
from extraction.config import ExtractorConfig
from extraction.schemas import get_schema
from extraction.schemas.base import SchemaSpec, bounded_json_schema

def export_gguf(model: str, adapter: str | None, out: Path, *, convert_script: Path | None = None,
                outtype: str = "q8_0") -> Path:
    """Merge ``adapter`` into ``model`` and write one GGUF file with llama.cpp's converter
    (by default the one ``scripts/setup.sh`` installed)."""
    from extraction.models import load
    from extraction.models.gguf import CONVERTED_TYPES, converter_path, write_gguf

    if outtype not in CONVERTED_TYPES:
        raise ConfigError(f"unknown GGUF type {outtype!r}", hint=f"choose one of {CONVERTED_TYPES}")
    converter = convert_script or converter_path()
    if converter is None or not converter.is_file():
        raise ConfigError(f"{converter or 'convert_hf_to_gguf.py'}: no such file",
                          hint="run scripts/setup.sh (it installs llama.cpp's converter) or "
                               "pass llama.cpp's convert_hf_to_gguf.py")
    loaded = load(model, device="cpu", precision="float32", adapter=adapter)  # merged on load
    return write_gguf(loaded.model, loaded.tokenizer, out, converter=converter,
                      outtype=outtype)


def grammar_schema(spec: SchemaSpec) -> dict[str, Any]:
    """The schema's JSON Schema with our bounds written as string lengths: llama.cpp's regex
    support does not cover our string pattern's negated class with ``\\u`` ranges."""
    return bounded_json_schema(spec.model.model_json_schema(), strings="length")


def llama_cpp_loop(task: Task, gguf: Path, config: ExtractorConfig, limit: int | None, *,
                   tokenizer: Any, threads: int, grammar: bool) -> list[dict[str, Any]]:
    """One text at a time through llama.cpp, greedy; result lines.

    The prompt is tokenized by the model's own tokenizer and handed over as ids, so llama.cpp
    sees exactly the tokens our pipeline sees. Without ``grammar`` the answer is parsed as
    its first JSON object, like the plain loop's: llama-cpp-python's grammar sampling cost
    about a second per token here (measured in BENCHMARKS.md), which no user would choose.
    """
    from llama_cpp import Llama, LlamaGrammar


    llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=threads, n_batch=512,
                verbose=False)
    spec = get_schema(task.schema)
    constraint = LlamaGrammar.from_json_schema(json.dumps(grammar_schema(spec)),
                                               verbose=False) if grammar else None
    lines = []
    for example, prompt_ids in zip(task.examples,
                                   pipeline_prompts(config, task, tokenizer, limit)):
        started = time.perf_counter()
        out = llm.create_completion(prompt_ids, max_tokens=config.max_new_tokens,
                                    temperature=0.0, top_k=1, grammar=constraint)
        seconds = time.perf_counter() - started
        lines.append(answer_line(task, spec, example, out["choices"][0]["text"],
                                 seconds=seconds, new_tokens=out["usage"]["completion_tokens"]))
    return lines
