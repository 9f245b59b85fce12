"""llama.cpp as a throughput-minded user runs it, for the bench's honest anchor.

Nobody serving many texts decodes one sequence at a time: they start ``llama-server
--parallel N`` (continuous batching, a prompt cache per slot) and send N requests at once.
This module does exactly that on a localhost port, with the pipeline's exact prompt token
ids, greedy, optionally under the schema's JSON-schema grammar, and scores the answers like
every other row. Each line's ``seconds`` is the wall time of the whole concurrent run over
the number of texts, so records/min is texts per wall minute.

The binary comes from ``scripts/build_llama_server.sh``: the llama.cpp commit vendored in
llama-cpp-python, i.e. the same kernels as the single-stream row.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extraction.errors import ConfigError
from extraction.settings import LLAMACPP_UBATCH

if TYPE_CHECKING:  # this module stays light (no torch): the CLI declares its options from it
    from eval.tasks import Task
    from extraction.config import ExtractorConfig
    from extraction.schemas import SchemaSpec

BUILD_HINT = "build it with: scripts/build_llama_server.sh (prints the binary's path)"
BINARY_ENV = "MATEXTRACT_LLAMA_SERVER"
DEFAULT_BINARY = Path(__file__).resolve().parents[1] / ".cache/llama.cpp/build/bin/llama-server"
HOST = "127.0.0.1"
LOG_TAIL_LINES = 15
# Straight to localhost: an http_proxy in the environment must not see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class ServerOptions:
    """One llama-server process: one bench row."""

    binary: Path  # the llama-server executable
    gguf: Path  # the model file it serves
    parallel: int  # slots: requests decoded together by continuous batching
    threads: int  # -t and -tb
    # one KV pool shared by every slot; off: -c is split into one slice per slot
    kv_unified: bool = False
    startup_timeout_s: float = 180.0  # model load and warm-up until /health says ok
    request_timeout_s: float = 3600.0  # one answer, queueing included, on a busy CPU

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ConfigError(f"parallel: need at least 1 slot, not {self.parallel}")
        if self.threads < 1:
            raise ConfigError(f"threads: need at least 1, not {self.threads}")


LLAMA_CPP_GROUP = "llama.cpp rows"


def _option(default: Any, cli: str, text: str) -> Any:
    return field(default=default, metadata={"cli": cli, "help": text, "group": LLAMA_CPP_GROUP})


def parse_counts(text: str) -> tuple[int, ...]:
    """Slot counts from ``8,32,64``."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise ConfigError(f"--llama-server-parallel {text!r}: expected slot counts of 1 or "
                          "more, comma-separated, e.g. 8,32,64")
    return counts


@dataclass(frozen=True)
class LlamaCppOptions:
    """The bench's llama.cpp rows: which GGUFs, and how llama.cpp runs them (declared once:
    ``matextract bench`` makes one option per field). Files are checked here, before the
    bench's first minute of work."""

    gguf: tuple[Path, ...] = _option(
        (), "llama-cpp-gguf", "GGUF file of the same (merged) model to run through llama.cpp "
        "side by side; repeat for several (make one with bench/export_gguf.py)")
    threads: int = _option(2, "llama-cpp-threads", "llama.cpp threads (every llama.cpp row)")
    single_stream: bool = _option(
        True, "llama-cpp-single-stream", "a row per GGUF through llama-cpp-python, one text "
        "at a time (needs llama-cpp-python)")
    grammar: bool = _option(False, "llama-cpp-grammar", "constrain the single-stream rows "
                            "with a grammar from the schema (slow in llama-cpp-python)")
    server: Path | None = _option(
        None, "llama-server", "llama-server binary (scripts/build_llama_server.sh builds it): "
        "rows with every text sent at once to --parallel slots (continuous batching, prompt "
        "cache)")
    server_parallel: str = _option("8,32,64", "llama-server-parallel",
                                   "llama-server slot counts, comma-separated: a row each")
    server_json_schema: bool = _option(
        True, "llama-server-json-schema", "also each llama-server row under the schema's "
        "JSON-schema grammar (sampled in C++, unlike llama-cpp-python's)")
    # off: llama.cpp's own default for an explicit --parallel; on 16 doping texts neither
    # setting was faster here, and split slices gave the same answers at 8 and 16 slots
    server_kv_unified: bool = _option(
        False, "llama-server-kv-unified", "one KV pool shared by the slots instead of one "
        "slice each")

    def __post_init__(self) -> None:
        for gguf in self.gguf:
            if not gguf.is_file():
                raise ConfigError(f"{gguf}: no such GGUF file",
                                  hint="make one with: python bench/export_gguf.py --help")
        if self.gguf and self.single_stream and importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError("--llama-cpp-gguf needs llama-cpp-python for its single-stream "
                              "row", hint="pip install 'matextract[llamacpp]' (compiles "
                              "llama.cpp, ~15 min), or pass --no-llama-cpp-single-stream")
        if self.server is not None:
            check_binary(self.server)
            if not self.gguf:
                raise ConfigError("--llama-server needs a model",
                                  hint="pass --llama-cpp-gguf FILE (bench/export_gguf.py)")
        parse_counts(self.server_parallel)  # a typo fails now, not after the other rows

    def servers(self, gguf: Path) -> list[ServerOptions]:
        """One server per slot count for ``gguf`` (none without --llama-server)."""
        if self.server is None:
            return []
        return [ServerOptions(binary=self.server, gguf=gguf, parallel=count,
                              threads=self.threads, kv_unified=self.server_kv_unified)
                for count in parse_counts(self.server_parallel)]

    @property
    def server_modes(self) -> tuple[bool, ...]:
        """Whether each server row is under the JSON-schema grammar."""
        return (False, True) if self.server_json_schema else (False,)


def default_binary() -> Path | None:
    """``$MATEXTRACT_LLAMA_SERVER``, else the build script's default output, if executable."""
    for candidate in (os.environ.get(BINARY_ENV), DEFAULT_BINARY):
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return Path(candidate)
    return None


def check_binary(path: Path) -> Path:
    """``path`` if it is an executable file, else a ConfigError saying how to get one."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such llama-server binary", hint=BUILD_HINT)
    if not os.access(path, os.X_OK):
        raise ConfigError(f"{path}: not executable", hint=f"chmod +x {path}, or {BUILD_HINT}")
    return path


def context_size(prompts: list[list[int]], *, parallel: int, max_new_tokens: int) -> int:
    """``-c`` for ``parallel`` slots that each hold the longest prompt and a full answer.

    Without a unified KV cache llama-server gives each slot ``-c / parallel`` cells; with
    one, all slots draw from ``-c`` at once. Either way this many cells never run out."""
    return parallel * (max(map(len, prompts)) + max_new_tokens)


def server_command(options: ServerOptions, *, port: int, context: int) -> list[str]:
    """The llama-server command line (flag names of the vendored llama.cpp's ``--help``)."""
    return [str(options.binary), "--model", str(options.gguf), "--host", HOST,
            "--port", str(port), "--parallel", str(options.parallel), "--cont-batching",
            "--cache-prompt", "--ctx-size", str(context),
            "--kv-unified" if options.kv_unified else "--no-kv-unified",
            "--threads", str(options.threads), "--threads-batch", str(options.threads),
            # the physical batch our llama.cpp backend uses
            "--batch-size", str(LLAMACPP_UBATCH), "--ubatch-size", str(LLAMACPP_UBATCH),
            "--no-webui"]


def completion_body(prompt_ids: list[int], *, max_new_tokens: int,
                    json_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``/completion`` request: the exact prompt tokens, greedy, prompt cache on."""
    body: dict[str, Any] = {"prompt": prompt_ids, "n_predict": max_new_tokens,
                            "temperature": 0.0, "top_k": 1, "cache_prompt": True}
    if json_schema is not None:
        body["json_schema"] = json_schema
    return body


def answer_from_response(task: Task, spec: SchemaSpec, example: Any,
                         response: dict[str, Any], *, seconds: float) -> dict[str, Any]:
    """A result line from a ``/completion`` response, scored like every other row."""
    from bench.answers import answer_line

    line = answer_line(task, spec, example, response["content"], seconds=seconds,
                       new_tokens=int(response["tokens_predicted"]))
    line["cached_prompt_tokens"] = int(response.get("timings", {}).get("cache_n", 0))
    return line


def free_port() -> int:
    """A localhost port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class LlamaServer:
    """A running llama-server; the process is stopped on exit, whatever happened.

    Its output goes to a temporary file (a pipe nobody reads would fill and stall it), whose
    last lines every error quotes."""

    def __init__(self, options: ServerOptions, *, context: int) -> None:
        self.options = options
        self.context = context
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> LlamaServer:
        check_binary(self.options.binary)
        if not self.options.gguf.is_file():
            raise ConfigError(f"{self.options.gguf}: no such GGUF file",
                              hint="make one with: python bench/export_gguf.py --help")
        self._folder = tempfile.TemporaryDirectory(prefix="matextract-llama-server-")
        self.port = free_port()
        try:
            with (Path(self._folder.name) / "server.log").open("wb") as log:
                self._process = subprocess.Popen(
                    server_command(self.options, port=self.port, context=self.context),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            self._wait_healthy()
        except OSError as exc:
            self.__exit__(None, None, None)
            raise ConfigError(f"{self.options.binary}: cannot start ({exc})",
                              hint=BUILD_HINT) from exc
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The server's last output lines (for error messages)."""
        if self._folder is None:
            return ""
        log = Path(self._folder.name) / "server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, problem: str) -> ConfigError:
        tail = self.log_tail()
        return ConfigError(f"llama-server ({self.options.binary.name} on port {self.port}): "
                           f"{problem}" + (f"\n  its last output:\n{tail}" if tail else ""),
                           hint="see its output above; run the same command by hand: "
                                + " ".join(server_command(self.options, port=self.port,
                                                          context=self.context)))

    def _wait_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.options.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise self._fail(f"exited with code {code} before it was ready")
            try:
                with _OPENER.open(self.url + "/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.2)
        raise self._fail(f"/health did not answer ok within {self.options.startup_timeout_s:g} s")

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/completion``; the parsed reply, or a ConfigError."""
        request = urllib.request.Request(self.url + "/completion",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(request, timeout=self.options.request_timeout_s) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise self._fail(f"/completion answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise self._fail(f"/completion failed: {exc}") from exc


def llama_server_loop(task: Task, config: ExtractorConfig, limit: int | None, *,
                      tokenizer: Any, options: ServerOptions,
                      json_schema: bool) -> list[dict[str, Any]]:
    """Every text's request at once (``options.parallel`` in flight), result lines.

    A fresh server per row, so no row inherits another's prompt cache; its start-up is
    outside the timing, as model loading is for every row."""
    from bench.answers import pipeline_prompts
    from bench.llamacpp_loop import grammar_schema
    from extraction.schemas import get_schema

    spec = get_schema(task.schema)
    prompts = pipeline_prompts(config, task, tokenizer, limit)
    schema = grammar_schema(spec) if json_schema else None
    bodies = [completion_body(ids, max_new_tokens=config.max_new_tokens, json_schema=schema)
              for ids in prompts]
    context = context_size(prompts, parallel=options.parallel,
                           max_new_tokens=config.max_new_tokens)
    # the pool outlives the server: on an error the server stops first, so requests still
    # in flight fail at once instead of running to the end
    with ThreadPoolExecutor(max_workers=options.parallel) as pool, \
            LlamaServer(options, context=context) as server:
        started = time.perf_counter()
        try:
            responses = list(pool.map(server.complete, bodies))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        seconds = (time.perf_counter() - started) / len(responses)
    return [answer_from_response(task, spec, example, response, seconds=seconds)
            for example, response in zip(task.examples, responses)]
