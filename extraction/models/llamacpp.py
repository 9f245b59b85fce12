"""The llama.cpp backend's model: a GGUF in a llama context that computes the logits of many
sequences per ``llama_decode``, while our decode loop (``decoding.batched``: grammar masks,
fast-forward, closing mode, copy constraint) chooses every token.

Why: on CPU llama.cpp's batched kernels run several times more tokens per second than
transformers' fp32 path (BENCHMARKS.md, issue 18), and weight-only Q8_0 halves what each step
reads. Everything that decides a token stays ours, so answers keep the schema, the length
bounds and the evidence links of the transformers path.

How: one llama context per loaded model, one KV stream per sequence. Sequence 0 holds the
prompt prefix (instructions, schema, few-shot turns), computed once per process; each row of
a batch is a sequence that starts as a copy of its keys and values (``llama_memory_seq_cp``).
A step puts every running row's new tokens into one ``llama_batch`` with logits for the
positions the loop needs; fast-forwarded tokens the model rejects are removed from their
sequence (``llama_memory_seq_rm``).

Why a stream per sequence rather than one unified cache where rows share the prefix's cells:
measured here (smollm2 Q8_0, 64 rows, 2 threads), a unified cache makes each row's token
attend over every row's cells, and a 64-token step took 446.6 ms against 209.8 ms with
streams (BENCHMARKS.md, bench/bench_llamacpp_steps.py). Copying a 246-token prefix into a stream costs far less.

Needs llama-cpp-python (``scripts/setup.sh`` builds it); ``available()`` says whether it is
importable, and callers fall back to transformers when it is not.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from extraction.errors import GenerationError
from extraction.settings import LLAMACPP_UBATCH

PREFIX_SEQUENCE = 0
# transformers model types that 'auto' sends to llama.cpp (its converter and runtime support
# them; we checked llama and gemma3_text end to end). Others decode with transformers unless
# the llama.cpp backend is asked for by name.
ARCHITECTURES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3",
                           "gemma3_text", "phi3"})
MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ; one is the prefix's
_KEEP_ALIVE: list[Any] = []  # the log callback must outlive every llama.cpp call


def available() -> bool:
    """Whether the llama.cpp binding is installed."""
    return importlib.util.find_spec("llama_cpp") is not None


def _silence(llama: Any) -> None:
    """llama.cpp logs every tensor it loads to stderr; our output is the interface."""
    if _KEEP_ALIVE:
        return
    callback = llama.llama_log_callback(lambda level, text, user_data: None)
    _KEEP_ALIVE.append(callback)
    llama.llama_log_set(callback, ctypes.c_void_p(0))


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


class LlamaCppEngine:
    """A GGUF model with one llama context, grown as batches need more cells.

    ``threads``: CPU threads for llama.cpp (default: torch's, i.e. the cores).
    ``flash_attention``: llama.cpp's fused attention kernel (a 64-row step: 160 ms against
    190 ms without it, measured here).
    ``full_precision_cache``: keys and values in f32 instead of llama.cpp's f16 (for an f32
    GGUF, whose answers should then match transformers' float32 ones most closely).
    """

    def __init__(self, gguf: Path, *, threads: int | None = None,
                 flash_attention: bool = True, full_precision_cache: bool = False) -> None:
        import llama_cpp as llama

        self.llama = llama
        _silence(llama)
        llama.llama_backend_init()
        self.gguf = Path(gguf)
        params = llama.llama_model_default_params()
        self.model = llama.llama_model_load_from_file(str(self.gguf).encode(), params)
        if not self.model:
            raise GenerationError(f"llama.cpp could not load {self.gguf}",
                                  hint="delete the file to have it converted again")
        self.vocab_size = llama.llama_vocab_n_tokens(llama.llama_model_get_vocab(self.model))
        self.threads = threads or torch.get_num_threads()
        self.flash_attention = flash_attention
        self.full_precision_cache = full_precision_cache
        self.context: Any = None
        self.sequences = 0  # the context's sequences, the prefix's included
        self.cells_per_sequence = 0
        self.step_capacity = 0  # tokens one llama_decode may take (the context's n_batch)
        self.prefix_ids: list[int] = []
        self.decode_calls = 0  # llama_decode calls so far (benchmarks count steps with it)
        self.batch: Any = None
        self.batch_tokens = 0

    # -- context and memory -------------------------------------------------------------------

    def reserve(self, sequences: int, cells_per_sequence: int, tokens_per_step: int) -> None:
        """Room for ``sequences`` rows besides the prefix's, each of up to
        ``cells_per_sequence`` KV cells, and steps of up to ``tokens_per_step`` tokens. A new
        context loses the cached prefix (it is computed again on demand)."""
        llama = self.llama
        if (self.context is None or sequences + 1 > self.sequences
                or cells_per_sequence > self.cells_per_sequence
                or tokens_per_step > self.step_capacity):
            self.close_context()
            params = llama.llama_context_default_params()
            self.sequences = max(sequences + 1, self.sequences)
            self.cells_per_sequence = _round_up(max(cells_per_sequence,
                                                    self.cells_per_sequence), 256)
            params.n_seq_max = self.sequences
            params.n_ctx = self.sequences * self.cells_per_sequence
            params.n_batch = max(tokens_per_step, self.step_capacity, 512)
            params.n_ubatch = LLAMACPP_UBATCH
            params.kv_unified = False
            params.n_threads = params.n_threads_batch = self.threads
            params.flash_attn_type = (llama.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attention
                                      else llama.LLAMA_FLASH_ATTN_TYPE_DISABLED)
            params.no_perf = True
            if self.full_precision_cache:
                params.type_k = params.type_v = llama.GGML_TYPE_F32
            self.context = llama.llama_init_from_model(self.model, params)
            if not self.context:
                raise GenerationError(f"llama.cpp could not create a context for {sequences} "
                                      f"rows of {self.cells_per_sequence} cells",
                                      hint="use a smaller --batch-size")
            self.step_capacity = params.n_batch
            self.prefix_ids = []
        if self.batch is None or tokens_per_step > self.batch_tokens:
            if self.batch is not None:
                llama.llama_batch_free(self.batch)
            self.batch_tokens = max(tokens_per_step, 512, 2 * self.batch_tokens)
            self.batch = llama.llama_batch_init(self.batch_tokens, 0, 1)

    @property
    def memory(self) -> Any:
        return self.llama.llama_get_memory(self.context)

    def forget(self, sequence: int, start: int = -1) -> None:
        """Drop a sequence's cells from position ``start`` on (all of them by default)."""
        self.llama.llama_memory_seq_rm(self.memory, sequence, start, -1)

    def share_prefix(self, sequence: int) -> None:
        """Start ``sequence`` (empty) as a copy of the prefix's keys and values."""
        self.llama.llama_memory_seq_cp(self.memory, PREFIX_SEQUENCE, sequence, -1, -1)

    def move(self, sequence: int, to: int) -> int:
        """Renumber ``sequence`` as ``to`` (empty): its keys and values are copied across
        streams at the next step, then ``sequence`` is freed. Returns ``to``."""
        self.llama.llama_memory_seq_cp(self.memory, sequence, to, -1, -1)
        self.forget(sequence)
        return to

    def ensure_prefix(self, ids: list[int]) -> None:
        """Sequence 0 holds exactly ``ids`` (computed only when they changed)."""
        if ids == self.prefix_ids:
            return
        self.forget(PREFIX_SEQUENCE)
        self.prefix_ids = []
        for start in range(0, len(ids), self.batch_tokens):
            chunk = ids[start:start + self.batch_tokens]
            self.decode([(PREFIX_SEQUENCE, start, chunk, 0)])
        self.prefix_ids = list(ids)

    # -- one step -----------------------------------------------------------------------------

    def decode(self, parts: list[tuple[int, int, list[int], int]]) -> torch.Tensor:
        """Run one batch: per part (sequence, first position, tokens, how many of its last
        tokens need logits). Returns the logits rows in that order, (outputs, vocab)."""
        llama, batch = self.llama, self.batch
        total = sum(len(tokens) for _, _, tokens, _ in parts)
        if total > self.batch_tokens:
            raise GenerationError(f"a step of {total} tokens exceeds the batch of "
                                  f"{self.batch_tokens}", hint="this is a bug: reserve first")
        token = np.ctypeslib.as_array(batch.token, shape=(self.batch_tokens,))
        pos = np.ctypeslib.as_array(batch.pos, shape=(self.batch_tokens,))
        n_seq = np.ctypeslib.as_array(batch.n_seq_id, shape=(self.batch_tokens,))
        wants = np.ctypeslib.as_array(batch.logits, shape=(self.batch_tokens,))
        at, outputs = 0, 0
        for sequence, first, tokens, keep in parts:
            n = len(tokens)
            token[at:at + n] = tokens
            pos[at:at + n] = np.arange(first, first + n)
            n_seq[at:at + n] = 1
            wants[at:at + n] = 0
            wants[at + n - keep:at + n] = 1
            for i in range(at, at + n):
                batch.seq_id[i][0] = sequence
            at += n
            outputs += keep
        batch.n_tokens = total
        self.decode_calls += 1
        status = llama.llama_decode(self.context, batch)
        if status != 0:
            raise GenerationError(f"llama_decode failed (status {status}) on a step of "
                                  f"{total} tokens", hint="use a smaller --batch-size")
        if not outputs:
            return torch.empty((0, self.vocab_size))
        pointer = llama.llama_get_logits(self.context)
        values = np.ctypeslib.as_array(pointer, shape=(outputs, self.vocab_size))
        return torch.from_numpy(values.copy())

    def close_context(self) -> None:
        if self.context is not None:
            self.llama.llama_free(self.context)
            self.context = None
            self.prefix_ids = []

    def __del__(self) -> None:  # the model's memory is llama.cpp's, not Python's
        try:
            if self.batch is not None:
                self.llama.llama_batch_free(self.batch)
            self.close_context()
            if self.model:
                self.llama.llama_model_free(self.model)
        except Exception:  # noqa: BLE001 - interpreter shutdown: modules may be gone
            pass
