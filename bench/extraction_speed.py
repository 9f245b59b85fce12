"""Records per minute at equal accuracy: a plain ``model.generate`` loop against our pipeline's
configurations, on the same benchmark texts, model and prompt, scored the same way."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.report import summarise
from eval.runner import read_lines, run_grid, run_id
from eval.tasks import Task, score_prediction
from extraction import generation, models, prompting
from extraction.models import LoadedModel
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.schemas import get_schema
from extraction.validation import validate


@dataclass(frozen=True)
class Setting:
    """One configuration of the comparison."""

    label: str
    options: dict[str, Any]  # ExtractorConfig fields over the defaults; {} for the plain loop
    plain: bool = False


SETTINGS = (
    Setting("plain `generate` loop (fp32, batch 1, unconstrained)", {}, plain=True),
    Setting("ours: constrained, batch 1", {"batch_size": 1, "fast_forward": False,
                                           "max_attempts": 1}),
    Setting("ours: + fast-forward", {"batch_size": 1, "max_attempts": 1}),
    Setting("ours: + batch 8", {"batch_size": 8, "max_attempts": 1}),
    Setting("ours: + batch 16", {"batch_size": 16, "max_attempts": 1}),
    Setting("ours: batch 8, unconstrained", {"batch_size": 8, "max_attempts": 1,
                                             "constrained": False}),
    Setting("ours: batch 8, int8", {"batch_size": 8, "max_attempts": 1, "precision": "int8"}),
    Setting("ours: default pipeline (batch 8, Reflexion 2 attempts)", {}),
)


def first_json_object(text: str) -> str:
    """The first complete JSON object in free text (what a plain loop's user would parse)."""
    start = text.find("{")
    if start < 0:
        return text
    try:
        _, end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return text[start:]
    return text[start:start + end]


def plain_generate_loop(task: Task, loaded: LoadedModel, config: ExtractorConfig,
                        limit: int | None) -> list[dict[str, Any]]:
    """``model.generate`` one text at a time with the pipeline's prompt: the baseline."""
    import torch

    extractor = Extractor(config, loaded=loaded, examples=task.few_shot)  # same prompt
    tokenizer = loaded.tokenizer
    lines = []
    for example in task.examples[:limit]:
        messages = prompting.build_messages(extractor.spec, example.text,
                                            examples=extractor.examples)
        inputs = tokenizer(prompting.render(tokenizer, messages), return_tensors="pt",
                           add_special_tokens=False).to(loaded.device)
        started = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(**inputs, max_new_tokens=config.max_new_tokens,
                                        do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id
                                        or tokenizer.eos_token_id)
        seconds = time.perf_counter() - started
        new = out[0, inputs["input_ids"].shape[1]:]
        checked = validate(extractor.spec,
                           first_json_object(tokenizer.decode(new, skip_special_tokens=True)))
        prediction = checked.record if checked.valid else None
        lines.append({"id": example.id, "seconds": seconds, "generation_s": seconds,
                      "new_tokens": int(new.numel()), "parses": checked.parsed is not None,
                      "valid": checked.valid, "attempts": 1,
                      **score_prediction(task, example, prediction)})
    return lines


def measure_settings(task: Task, *, model: str, limit: int | None,
                     settings: tuple[Setting, ...] = SETTINGS) -> list[dict[str, Any]]:
    """Every setting on the same texts, in one process; one summary row per setting.
    Model loading is outside every figure (each setting loads its model before timing)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="matextract-bench-") as folder:
        for setting in settings:
            config = ExtractorConfig(model=model, schema_name=task.schema, **setting.options)
            if setting.plain:
                loaded = models.load(config.model, precision=config.precision,
                                     adapter=config.adapter)
                lines = plain_generate_loop(task, loaded, config, limit)
                models.unload(loaded)
            else:
                run_grid(task, [(config, setting.options)], out=Path(folder), limit=limit,
                         progress=False)
                lines, _ = read_lines(
                    Path(folder) / f"{run_id(task.name, config, setting.options)}.jsonl")
            row = summarise({"task": task.name, "model": {"name": model}}, lines)
            row.update(label=setting.label, options=setting.options,
                       records_per_minute=60 * len(lines) / sum(x["seconds"] for x in lines),
                       forward_passes=sum(x.get("forward_passes", 0) for x in lines),
                       forced_tokens=sum(x.get("forced_tokens", 0) for x in lines),
                       grammar_seconds=sum(x.get("grammar_seconds", 0.0) for x in lines),
                       generation_seconds=sum(x.get("generation_s", 0.0) for x in lines))
            rows.append(row)
    return rows


def time_to_first_token(loaded: LoadedModel, task: Task, *, examples: Any,
                        sentences: int = 8) -> dict[str, Any]:
    """Prefill time with and without the cached prompt prefix, and whether answers match."""
    spec = get_schema(task.schema)
    prefix = generation.PrefixCache(loaded, prompting.fixed_prefix(loaded.tokenizer, spec,
                                                                   examples=examples))
    constraint = generation.JsonConstraint(loaded, spec.json_schema())
    plain_s, reused_s, identical = [], [], 0
    for example in task.examples[:sentences]:
        prompt = prompting.render(loaded.tokenizer, prompting.build_messages(
            spec, example.text, examples=examples))
        plain = generation.generate(loaded, prompt, constraint=constraint, max_new_tokens=96)
        reused = generation.generate(loaded, prompt, constraint=constraint, max_new_tokens=96,
                                     prefix=prefix)
        plain_s.append(plain.prefill_seconds)
        reused_s.append(reused.prefill_seconds)
        identical += plain.text.encode() == reused.text.encode()
    return {"prefix_tokens": len(prefix.ids), "few_shot_examples": len(examples),
            "ttft_plain_ms": 1000 * sum(plain_s) / len(plain_s),
            "ttft_reused_ms": 1000 * sum(reused_s) / len(reused_s),
            "identical_outputs": f"{identical}/{len(plain_s)}"}
