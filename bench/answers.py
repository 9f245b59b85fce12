"""Prompts and answer lines every bench row shares (our loops, the plain loop, llama.cpp):
the pipeline's exact prompt tokens, and a free-text answer parsed and scored like ours."""

from __future__ import annotations

import json
from typing import Any

from eval.tasks import Task, score_prediction
from extraction import prompting
from extraction.checking.validation import validate
from extraction.config import ExtractorConfig
from extraction.pipeline import prompt_examples
from extraction.schemas import SchemaSpec, get_schema


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


def pipeline_prompts(config: ExtractorConfig, task: Task, tokenizer: Any,
                     limit: int | None) -> list[list[int]]:
    """The pipeline's own prompt under ``config`` for each of the first ``limit`` texts, as
    token ids."""
    spec = get_schema(task.schema)
    examples = prompt_examples(config, task.few_shot)
    return [tokenizer(prompting.render(tokenizer, prompting.build_messages(
        spec, example.text, examples=examples)), add_special_tokens=False).input_ids
        for example in task.examples[:limit]]


def answer_line(task: Task, spec: SchemaSpec, example: Any, answer: str, *, seconds: float,
                new_tokens: int) -> dict[str, Any]:
    """A result line for a free-text answer, parsed as its user would and scored like ours."""
    checked = validate(spec, first_json_object(answer))
    prediction = checked.record if checked.valid else None
    return {"id": example.id, "seconds": seconds, "generation_s": seconds,
            "new_tokens": new_tokens, "parses": checked.parsed is not None,
            "valid": checked.valid, "attempts": 1,
            **score_prediction(task, example, prediction)}
