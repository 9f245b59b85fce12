"""bench/llamacpp_server.py: llama-server rows of ``matextract bench``.

The pure parts run everywhere (a shell script stands in for a server that never comes up or
dies at start). The end-to-end tests start the real llama-server (scripts/build_llama_server.sh,
or $MATEXTRACT_LLAMA_SERVER) on a tiny random LLaMA converted to GGUF by the converter of the
binary's own llama.cpp sources; they are skipped when no binary is found.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.bench import option_args
from bench.extraction_speed import server_label
from bench.llamacpp_server import (LlamaCppOptions, LlamaServer, ServerOptions,
                                   answer_from_response, check_binary, completion_body,
                                   context_size, default_binary, llama_server_loop,
                                   parse_counts, server_command)
from eval.tasks import load_task
from extraction import models
from extraction.config import ExtractorConfig
from extraction.errors import ConfigError
from extraction.schemas import get_schema
from tests.conftest import tiny_model_folder


def _script(folder: Path, body: str) -> Path:
    path = folder / "llama-server"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _options(binary: Path, gguf: Path, **overrides: object) -> ServerOptions:
    return ServerOptions(**{"binary": binary, "gguf": gguf, "parallel": 2, "threads": 1,
                            **overrides})


# --- pure parts ------------------------------------------------------------------------------

def test_completion_body_is_the_exact_prompt_greedy_with_prompt_cache():
    body = completion_body([1, 2, 3], max_new_tokens=96)
    assert body == {"prompt": [1, 2, 3], "n_predict": 96, "temperature": 0.0, "top_k": 1,
                    "cache_prompt": True}
    schema = {"type": "object"}
    assert completion_body([1], max_new_tokens=64, json_schema=schema)["json_schema"] == schema


def test_server_command_and_context_fit_every_slot(tmp_path):
    options = ServerOptions(binary=tmp_path / "llama-server", gguf=tmp_path / "m.gguf",
                            parallel=8, threads=2)
    context = context_size([[0] * 300, [0] * 280], parallel=8, max_new_tokens=384)
    assert context == 8 * (300 + 384)
    command = server_command(options, port=4321, context=context)
    pairs = dict(zip(command, command[1:]))
    assert pairs["--parallel"] == "8" and pairs["--ctx-size"] == str(context)
    assert pairs["--threads"] == pairs["--threads-batch"] == "2"
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "4321"
    assert {"--cont-batching", "--cache-prompt", "--no-kv-unified"} <= set(command)
    unified = ServerOptions(binary=options.binary, gguf=options.gguf, parallel=8, threads=2,
                            kv_unified=True)
    assert "--kv-unified" in server_command(unified, port=1, context=1)


def test_response_becomes_a_scored_answer_line():
    task = load_task("doping")
    spec, example = get_schema("doping"), task.examples[0]
    good = answer_from_response(task, spec, example, {
        "content": "Here: " + json.dumps(example.gold), "tokens_predicted": 40,
        "timings": {"cache_n": 250}}, seconds=0.5)
    assert good["parses"] and good["valid"] and good["id"] == example.id
    assert (good["new_tokens"], good["seconds"], good["cached_prompt_tokens"]) == (40, 0.5, 250)
    cut = answer_from_response(task, spec, example, {"content": '{"hosts": ["Zn',
                                                     "tokens_predicted": 384}, seconds=0.5)
    assert not cut["parses"] and not cut["valid"] and cut["cached_prompt_tokens"] == 0


@pytest.mark.parametrize("text, counts", [("8,32,64", (8, 32, 64)), ("16", (16,)),
                                          ("", None), ("8,x", None), ("8,0", None)])
def test_slot_counts_parse_or_fail_naming_the_option(text, counts):
    if counts is None:
        with pytest.raises(ConfigError, match="--llama-server-parallel"):
            parse_counts(text)
    else:
        assert parse_counts(text) == counts


def test_options_give_one_server_per_slot_count_and_the_report_flags(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    binary = _script(tmp_path, "exit 0\n")
    options = LlamaCppOptions(gguf=(gguf,), single_stream=False, server=binary,
                              server_parallel="8,16", threads=3)
    servers = options.servers(gguf)
    assert [(s.parallel, s.threads, s.gguf) for s in servers] == [(8, 3, gguf), (16, 3, gguf)]
    assert options.server_modes == (False, True)
    assert server_label(servers[1], json_schema=True) == \
        "llama-server --parallel 16 (m.gguf, json_schema, 3 threads)"
    assert option_args(options) == [f"--llama-cpp-gguf {gguf}", "--llama-cpp-threads 3",
                                    "--no-llama-cpp-single-stream", f"--llama-server {binary}",
                                    "--llama-server-parallel 8,16"]
    assert LlamaCppOptions().servers(gguf) == []
    with pytest.raises(ConfigError, match="--llama-server needs a model"):
        LlamaCppOptions(server=binary)


def test_missing_or_unexecutable_binary_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such llama-server binary") as missing:
        check_binary(tmp_path / "llama-server")
    assert "build_llama_server.sh" in str(missing.value)
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(ConfigError, match="not executable"):
        check_binary(plain)


def test_bench_refuses_a_missing_server_binary_before_any_work(cli, tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    done = cli("bench", "--llama-cpp-gguf", str(gguf), "--no-llama-cpp-single-stream",
               "--llama-server", str(tmp_path / "nope"))
    assert done.returncode == 2 and "nope: no such llama-server binary" in done.stderr


def test_a_server_that_never_answers_times_out_with_its_output_and_is_stopped(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    pid_file = tmp_path / "pid"
    binary = _script(tmp_path, f'echo $$ > {pid_file}\necho "loading model: still busy" >&2\n'
                               "exec sleep 60\n")
    with pytest.raises(ConfigError) as error:
        with LlamaServer(_options(binary, gguf, startup_timeout_s=1.0), context=64):
            pass
    message = str(error.value)
    assert "/health did not answer ok within 1 s" in message
    assert "loading model: still busy" in message and "--parallel 2" in message
    with pytest.raises(ProcessLookupError):  # terminated and reaped
        os.kill(int(pid_file.read_text()), 0)


def test_a_server_that_dies_at_start_reports_its_exit_code_and_last_lines(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    binary = _script(tmp_path, 'echo "error: invalid argument: --bogus" >&2\nexit 1\n')
    with pytest.raises(ConfigError, match="exited with code 1") as error:
        with LlamaServer(_options(binary, gguf), context=64):
            pass
    assert "error: invalid argument: --bogus" in str(error.value)


# --- the real llama-server on a tiny GGUF ----------------------------------------------------

@pytest.fixture(scope="module")
def server_binary() -> Path:
    binary = default_binary()
    if binary is None:
        pytest.skip("no llama-server binary: run scripts/build_llama_server.sh or set "
                    "$MATEXTRACT_LLAMA_SERVER")
    return binary


@pytest.fixture(scope="module")
def tiny_gguf(server_binary: Path, default_model_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaMA with SmolLM2's tokenizer (whose pre-tokenizer the converter
    knows; the session's own tiny BPE has a hash it would refuse) as an f32 GGUF."""
    pytest.importorskip("sentencepiece", reason="llama.cpp's converter imports it for LLaMA")
    cache = server_binary.parent.parent / "CMakeCache.txt"
    found = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.+)$",
                      cache.read_text() if cache.exists() else "", re.M)
    converter = Path(found.group(1)) / "convert_hf_to_gguf.py" if found else None
    if converter is None or not converter.is_file():
        pytest.skip(f"no convert_hf_to_gguf.py next to the sources of {server_binary}")
    folder = tiny_model_folder("llama", default_model_dir, tmp_path_factory.mktemp("tiny"))
    gguf = folder / "tiny.gguf"
    subprocess.run([sys.executable, str(converter), str(folder), "--outtype", "f32",
                    "--outfile", str(gguf)], check=True, capture_output=True)
    return gguf


@pytest.mark.slow
def test_server_command_flags_exist_in_its_help(server_binary, tmp_path):
    helped = subprocess.run([str(server_binary), "--help"], capture_output=True, text=True,
                            timeout=60)
    command = server_command(_options(server_binary, tmp_path / "m.gguf"), port=1, context=1)
    flags = {arg for arg in command if arg.startswith("--")}
    assert flags and all(re.search(rf"{flag}\b", helped.stdout + helped.stderr)
                         for flag in flags), flags


@pytest.mark.slow
@pytest.mark.parametrize("json_schema", [False, True])
def test_llama_server_rows_end_to_end(server_binary, tiny_gguf, json_schema):
    task = load_task("doping")
    config = ExtractorConfig(model=str(tiny_gguf.parent), schema_name="doping",
                             max_attempts=1, max_new_tokens=64)
    lines = llama_server_loop(task, config, 3, tokenizer=models.load_tokenizer(config.model),
                              options=_options(server_binary, tiny_gguf),
                              json_schema=json_schema)
    assert [line["id"] for line in lines] == [e.id for e in task.examples[:3]]
    assert all(0 < line["new_tokens"] <= 64 for line in lines)
    assert len({line["seconds"] for line in lines}) == 1 and lines[0]["seconds"] > 0
    assert all("parses" in line and "valid" in line for line in lines)


@pytest.mark.slow
def test_llama_server_is_greedy_reuses_its_prompt_cache_and_keeps_to_the_schema(
        server_binary, tiny_gguf):
    from bench.llamacpp_loop import grammar_schema

    tokenizer = models.load_tokenizer(str(tiny_gguf.parent))
    ids = tokenizer("Mn-doped ZnO films were grown.", add_special_tokens=False).input_ids
    body = completion_body(ids, max_new_tokens=16,
                           json_schema=grammar_schema(get_schema("doping")))
    with LlamaServer(_options(server_binary, tiny_gguf, parallel=1),
                     context=len(ids) + 16) as server:
        first, second = server.complete(body), server.complete(body)
    assert first["content"] == second["content"]
    assert first["content"].lstrip().startswith("{")
    assert second["timings"]["cache_n"] > 0
