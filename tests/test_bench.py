"""``matextract bench``: one run on a tiny model gives every figure, and the pure helpers."""

from __future__ import annotations

import json

import pytest

from bench import machine
from bench.answers import first_json_object
from bench.extraction_speed import SETTINGS
from extraction import models
from tests.test_cli import matextract


def test_first_json_object_is_what_a_plain_loop_user_parses():
    assert first_json_object('Sure! {"a": [1, {"b": "}"}]} and more {"c": 2}') == \
        '{"a": [1, {"b": "}"}]}'
    assert first_json_object("no json here") == "no json here"
    assert first_json_object('{"cut": "off') == '{"cut": "off'


def test_weight_bytes_counts_tied_weights_once_and_int8_smaller(tiny_model_dirs):
    fp32 = models.load(str(tiny_model_dirs["llama"]), device="cpu")
    unique = {p.data_ptr(): p for p in fp32.model.parameters()}
    assert machine.weight_bytes(fp32.model) >= sum(p.numel() * 4 for p in unique.values())
    int8 = models.load(str(tiny_model_dirs["llama"]), device="cpu", precision="int8")
    assert machine.weight_bytes(int8.model) < machine.weight_bytes(fp32.model)
    assert machine.decode_floor_tokens_per_second(10.0, 10**9) == 10.0
    assert machine.read_bandwidth_gbps(megabytes=16, repeats=2) > 0.1


def test_bench_command_reports_every_setting_with_scores(tiny_model_dirs, tmp_path):
    out = tmp_path / "bench"
    done = matextract("bench", "--model", str(tiny_model_dirs["llama"]), "--limit", "2",
                      "--no-index", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "bench.json").read_text())
    # llama.cpp's converter does not know the tiny model's tokenizer: its rows are left out,
    # saying why, and every other setting runs.
    assert "llama.cpp's converter failed" in done.stderr
    assert [row["label"] for row in report["settings"]] == \
        [s.label for s in SETTINGS if s.options.get("backend") != "llamacpp"]
    for row in report["settings"]:
        assert row["n"] == 2 and row["records_per_minute"] > 0
        assert row["strict"] is not None  # scored with the paper's scorer
    fast, slow = report["settings"][2], report["settings"][1]
    assert fast["forced_tokens"] > 0 and slow["forced_tokens"] == 0
    for key in ("ttft_few_shot_prompt", "ttft_zero_shot_prompt"):
        assert report[key]["identical_outputs"] == "8/8"
    assert report["ttft_few_shot_prompt"]["prefix_tokens"] > \
        report["ttft_zero_shot_prompt"]["prefix_tokens"]
    markdown = (out / "bench.md").read_text()
    assert "records/min" in markdown and "time to first token" in markdown


def test_llama_cpp_grammar_schema_keeps_our_bounds_without_the_pattern():
    from bench.llamacpp_loop import grammar_schema
    from extraction.schemas import get_schema

    ours = get_schema("doping").json_schema()
    theirs = grammar_schema(get_schema("doping"))
    host = theirs["$defs"]["DopingLink"]["properties"]["host"]
    assert "pattern" not in host and (host["minLength"], host["maxLength"]) == (1, 48)
    assert theirs["properties"]["hosts"]["items"]["maxLength"] == 48
    assert theirs["properties"]["links"]["maxItems"] == ours["properties"]["links"]["maxItems"]
    assert "pattern" in ours["properties"]["hosts"]["items"]  # xgrammar's schema is unchanged
    assert "pattern" not in json.dumps(theirs)


def test_bench_refuses_a_missing_gguf_before_any_work(tmp_path):
    done = matextract("bench", "--llama-cpp-gguf", str(tmp_path / "missing.gguf"),
                      "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "missing.gguf: no such GGUF file" in done.stderr
    assert not (tmp_path / "out").exists()


def test_gguf_export_failure_is_one_clear_error_and_keeps_an_existing_file(tiny_model_dirs,
                                                                          tmp_path):
    from bench.llamacpp_loop import export_gguf
    from extraction.errors import ConfigError

    failing = tmp_path / "convert_hf_to_gguf.py"
    failing.write_text("import sys; sys.exit('no module named sentencepiece')\n")
    out = tmp_path / "model.gguf"
    out.write_bytes(b"an earlier good export")
    with pytest.raises(ConfigError, match=r"converter failed \(exit 1\)"):
        export_gguf(str(tiny_model_dirs["llama"]), None, out, convert_script=failing)
    assert out.read_bytes() == b"an earlier good export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["convert_hf_to_gguf.py", "model.gguf"]
