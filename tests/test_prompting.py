"""One prompt format for inference and fine-tuning."""

from __future__ import annotations

import json

from transformers import AutoTokenizer

from extraction import prompting
from extraction.schemas import get_schema


def test_training_prompt_is_the_inference_prompt(tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    spec = get_schema("doping")
    text = "Mn-doped ZnO films."
    output = {"hosts": ["ZnO"], "dopants": ["Mn"], "links": [{"host": "ZnO", "dopant": "Mn"}]}
    prompt, completion = prompting.training_text(tokenizer, spec, text, output)
    assert prompt == prompting.render(tokenizer, prompting.build_messages(spec, text))
    assert prompt.endswith("<|im_start|>assistant\n")  # the chat template, not the plain one
    assert completion == prompting.compact_json(output) + tokenizer.eos_token
    assert json.loads(completion.removesuffix(tokenizer.eos_token)) == output


def test_messages_hold_instructions_examples_and_the_document_last():
    spec = get_schema("mof")
    messages = prompting.build_messages(spec, "ZIF-8 adsorbs CO2.", feedback=["fix it"])
    assert messages[0]["role"] == "system" and prompting.DATA_NOTICE in messages[0]["content"]
    assert spec.examples and len(messages) == 2 + 2 * len(spec.examples)
    assert messages[-1]["content"].startswith("<document>\nZIF-8 adsorbs CO2.\n</document>")
    assert "- fix it" in messages[-1]["content"]
    for assistant in messages[2:-1:2]:
        assert " " not in assistant["content"].split('"')[0]  # compact like the grammar


def test_plain_template_for_models_without_chat_template():
    class Bare:
        chat_template = None

    prompt = prompting.render(Bare(), prompting.build_messages(get_schema("doping"), "text"))
    assert prompt.startswith("### Instructions") and prompt.endswith("### JSON\n")
