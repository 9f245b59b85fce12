"""The greedy decode loop behind ``generation.generate``: many prompts at once, one grammar
matcher per sequence, fast-forward of forced tokens with verification.

A step: every active row feeds its pending tokens (the prompt's new part at first, then the
last chosen token) followed by the tokens its grammar forces. Two ways to run it, same
answers:

- ``PackedSteps`` (models ``packed.supports``): all rows' tokens as one sequence, no
  padding, the prompt prefix's keys/values shared by every row (see ``packed``);
- ``LlamaCppSteps`` (models loaded with the llama.cpp backend): the same tokens as
  sequences of one llama.cpp batch, the prefix's cells shared (see ``models.llamacpp``);
- ``PaddedSteps`` (any model): rows right-aligned and left-padded to the widest, positions
  passed explicitly, so padding and rejected forced tokens are masked out for good
  (attention mask 0) instead of being cut from the KV cache.

Finished rows leave the batch, so the step cost follows the rows still running.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from extraction.decoding import packed as packing
from extraction.decoding.extractive import EXTRACTIVE_MARGIN, CopyPlan, CopyState
from extraction.errors import GenerationError
from extraction.models import LoadedModel, llamacpp


@dataclass
class Row:
    """One sequence of a batched decode."""

    pending: list[int]  # tokens to feed at the next step
    next_position: int  # position id of pending[0]
    matcher: Any | None
    scanner: Any
    generated: list[int] = field(default_factory=list)
    # log-probability of each generated token under the model's own (unmasked) distribution
    logprobs: list[float] = field(default_factory=list)
    forward_passes: int = 0
    forced_kept: int = 0
    grammar_seconds: float = 0.0  # spent in the grammar (masks, matcher), not the model
    finish: str | None = None
    copy: CopyState | None = None  # values copied from the source (``extractive``)


class BatchDecoder:
    """Greedy decoding of rows that share a model and (optionally) a prompt-prefix cache."""

    def __init__(self, loaded: LoadedModel, constraint: Any | None, *, max_new_tokens: int,
                 stop_at_json_end: bool, fast_forward: bool, stop_ids: set[int],
                 packed: bool = False, copy_plan: CopyPlan | None = None) -> None:
        self.loaded, self.constraint = loaded, constraint
        self.copy_plan = copy_plan
        # Tokens kept for closing: the grammar's, and more to end a copied value validly.
        self.reserve = (constraint.reserve + (EXTRACTIVE_MARGIN if copy_plan else 0)
                        if constraint else 0)
        self.packed = packed
        self.max_new_tokens = max_new_tokens
        self.stop_at_json_end = stop_at_json_end
        self.fast_forward = fast_forward and constraint is not None
        self.stop_ids = stop_ids
        self.bitmask = (constraint._xgr.allocate_token_bitmask(1, constraint.vocab_size)
                        if constraint else None)
        tokenizer = loaded.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else tokenizer.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0

    def new_row(self, fresh_ids: list[int], start_position: int, *,
                source: str | None = None) -> Row:
        """``source``: the text this row's extractive values are copied from."""
        copy = CopyState(self.copy_plan, source) \
            if self.copy_plan is not None and source is not None else None
        return Row(pending=list(fresh_ids), next_position=start_position,
                   matcher=self.constraint.matcher() if self.constraint else None,
                   scanner=JsonEndScanner(), copy=copy)

    def run(self, rows: list[Row], prefix: Any | None) -> float:
        """Decode every row to its end; returns the seconds to the first forward pass.

        ``prefix``: the ``PrefixCache`` of the tokens every row starts with, or None.
        """
        started = time.perf_counter()
        prefill_seconds = 0.0
        steps_runner = self._steps(rows, prefix)
        active = list(range(len(rows)))
        with torch.inference_mode():
            while active:
                steps = [self._step_tokens(rows[i]) for i in active]
                logits = steps_runner.forward([rows[i] for i in active], steps)
                if not prefill_seconds:
                    prefill_seconds = time.perf_counter() - started
                for batch_row, index in enumerate(active):
                    pending, forced = steps[batch_row]
                    rejected = self._advance(rows[index], pending, forced, logits[batch_row])
                    if rejected:
                        steps_runner.reject(batch_row, rejected)
                still = [b for b, index in enumerate(active) if rows[index].finish is None]
                if still and len(still) < len(active):
                    steps_runner.keep(still)
                active = [active[b] for b in still]
        return prefill_seconds

    def _steps(self, rows: list[Row], prefix: Any | None) -> Any:
        """How steps run: through llama.cpp when the model has an engine, else packed or
        padded through transformers."""
        engine = self.loaded.engine
        if engine is not None:
            return LlamaCppSteps(engine, rows, prefix.ids if prefix else [],
                                 self.max_new_tokens)
        cache, length = (prefix.cache, len(prefix.ids)) if prefix else (None, 0)
        if self.packed:
            return PackedSteps(self.loaded, len(rows), cache, length)
        return PaddedSteps(self.loaded, self.pad_id, len(rows), cache, length)

    def _step_tokens(self, row: Row) -> tuple[list[int], list[int]]:
        if not self.fast_forward:
            return row.pending, []
        started = time.perf_counter()
        forced = self._forced(row)
        row.grammar_seconds += time.perf_counter() - started
        return row.pending, forced

    def _advance(self, row: Row, pending: list[int], forced: list[int],
                 logits: torch.Tensor) -> int:
        """Verify the forced tokens, take the next one; returns how many were rejected.

        Row i of ``logits`` predicts forced[i]; the last row predicts the token after them.
        The forced tokens were accepted by the matcher when proposed and are re-checked one
        by one against what greedy decoding would have chosen.
        """
        row.forward_passes += 1
        if forced:
            row.matcher.rollback(len(forced))
        kept = 0
        for proposed in forced:
            choice, logprob = self._choose(row, logits[kept])
            if choice != proposed:
                row.next_position += len(pending) + kept
                self._take(row, choice, logprob)
                return len(forced) - kept
            row.matcher.accept_token(proposed)
            if row.copy is not None:
                started = time.perf_counter()
                row.copy.accept(proposed, forced=True)
                row.grammar_seconds += time.perf_counter() - started
            row.generated.append(proposed)
            row.logprobs.append(logprob)
            row.forced_kept += 1
            kept += 1
        row.next_position += len(pending) + kept
        self._take(row, *self._choose(row, logits[kept]))
        return 0

    def _choose(self, row: Row, logits: torch.Tensor) -> tuple[int, float]:
        """The greedy token for one position (masked by the grammar when constrained, and
        by the copy constraint inside extractive values), with its log-probability under
        the model's unmasked distribution: how much the model itself wanted it, which the
        confidence of a value is computed from (``extraction.confidence``)."""
        normaliser = torch.logsumexp(logits, dim=-1)
        token = self._masked_choice(row, logits)
        return token, float(logits[token] - normaliser)

    def _masked_choice(self, row: Row, logits: torch.Tensor) -> int:
        if row.matcher is None:
            return int(torch.argmax(logits))
        started = time.perf_counter()
        row.matcher.fill_next_token_bitmask(self.bitmask)
        if row.copy is not None:
            row.copy.restrict(self.bitmask)
        self.constraint._xgr.apply_token_bitmask_inplace(logits.unsqueeze(0), self.bitmask)
        row.grammar_seconds += time.perf_counter() - started
        if self.max_new_tokens - len(row.generated) <= self.reserve:
            closer = pick_closer(logits, self.constraint.closers)
            if closer is None and row.copy is not None:  # a copied value ends at a boundary
                closer = row.copy.closing_token(logits)
            if closer is None:  # text the grammar forces, in as few tokens as the reserve
                closer = self._forced_start(row, logits)
            if closer is not None:
                return closer
        return int(torch.argmax(logits))

    def _forced_start(self, row: Row, logits: torch.Tensor) -> int | None:
        """The first token of the forced text as the tokenizer spells it (the reserve counts
        tokens of that spelling; a model left to choose may spell it byte by byte)."""
        text = row.matcher.find_jump_forward_string()
        if not text:
            return None
        first = self.loaded.tokenizer.encode(text, add_special_tokens=False)[:1]
        return first[0] if first and torch.isfinite(logits[first[0]]) else None

    def _take(self, row: Row, token: int, logprob: float) -> None:
        """Append the chosen token and decide whether the row is finished."""
        row.pending = [token]
        if token in self.stop_ids:
            completed = row.matcher is not None and row.matcher.is_completed()
            row.finish = "complete" if completed else "stop"
            return
        if row.matcher is not None:
            if not row.matcher.accept_token(token):
                raise GenerationError(f"grammar rejected token {token} at step "
                                      f"{len(row.generated)}")
            if row.copy is not None:
                started = time.perf_counter()
                row.copy.accept(token)
                row.grammar_seconds += time.perf_counter() - started
            row.generated.append(token)
            row.logprobs.append(logprob)
            if row.matcher.is_completed():
                row.finish = "complete"
        else:
            row.generated.append(token)
            row.logprobs.append(logprob)
            if self.stop_at_json_end and row.scanner.feed(self.loaded.tokenizer.decode([token])):
                row.finish = "complete"
        if row.finish is None and len(row.generated) >= self.max_new_tokens:
            row.finish = "length"

    def _forced(self, row: Row) -> list[int]:
        """Tokens of the text the grammar forces next, accepted by the matcher (to verify).

        Never more than fit before the closing reserve, so no forced position is decoded in
        closing mode.
        """
        room = self.max_new_tokens - self.reserve - len(row.generated) - 1
        text = row.matcher.find_jump_forward_string()
        if not text or room <= 0:
            return []
        accepted: list[int] = []
        for token in self.loaded.tokenizer.encode(text, add_special_tokens=False)[:room]:
            if not row.matcher.accept_token(token):
                break
            accepted.append(token)
        return accepted


class PaddedSteps:
    """Steps as one padded batch: works with any model."""

    def __init__(self, loaded: LoadedModel, pad_id: int, rows: int, prefix: Any | None,
                 prefix_length: int) -> None:
        self.loaded, self.pad_id = loaded, pad_id
        self.past = None
        if prefix is not None:
            self.past = copy.deepcopy(prefix)
            if rows > 1:
                self.past.batch_repeat_interleave(rows)
        self.attention = torch.ones((rows, prefix_length), dtype=torch.long)

    def forward(self, rows: list[Row], steps: list[tuple[list[int], list[int]]]
                ) -> list[torch.Tensor]:
        """Run one step; per row, the logits at its forced tokens and after them."""
        width = max(len(pending) + len(forced) for pending, forced in steps)
        keep = max(len(forced) for _, forced in steps) + 1
        input_ids, positions, step_mask = self._layout(rows, steps, width)
        self.attention = torch.cat([self.attention, step_mask], dim=1)
        device = self.loaded.device
        out = self.loaded.model(input_ids=input_ids.to(device),
                                attention_mask=self.attention.to(device),
                                position_ids=positions.to(device), past_key_values=self.past,
                                use_cache=True, logits_to_keep=keep)
        self.past = out.past_key_values
        logits = out.logits.float().cpu()  # (B, keep, V): masks are applied on CPU
        return [logits[b, keep - len(forced) - 1:] for b, (_, forced) in enumerate(steps)]

    def reject(self, batch_row: int, count: int) -> None:
        self.attention[batch_row, -count:] = 0  # never attended to again

    def keep(self, batch_rows: list[int]) -> None:
        self.past.batch_select_indices(torch.tensor(batch_rows, device=self.loaded.device))
        self.attention = self.attention[batch_rows]

    def _layout(self, rows: list[Row], steps: list[tuple[list[int], list[int]]],
                width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-aligned input ids, explicit positions and this step's mask columns."""
        batch = len(rows)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for b, (row, (pending, forced)) in enumerate(zip(rows, steps)):
            tokens = pending + forced
            pad = width - len(tokens)
            input_ids[b, pad:] = torch.tensor(tokens)
            positions[b, pad:] = torch.arange(row.next_position, row.next_position + len(tokens))
            positions[b, :pad] = row.next_position  # masked; any valid position will do
            mask[b, pad:] = 1
        return input_ids, positions, mask


class PackedSteps:
    """Steps as one packed sequence without padding (``packing.supports`` models)."""

    def __init__(self, loaded: LoadedModel, rows: int, prefix: Any | None,
                 prefix_length: int) -> None:
        packing.enable(loaded.model)
        self.loaded = loaded
        self.cache = packing.PackedCache(rows, prefix, prefix_length, device=loaded.device)

    def forward(self, rows: list[Row], steps: list[tuple[list[int], list[int]]]
                ) -> list[torch.Tensor]:
        """Run one step; per row, the logits at its forced tokens and after them."""
        tokens = [pending + forced for pending, forced in steps]
        layout = self.cache.plan([len(t) for t in tokens], [row.next_position for row in rows])
        keep_last = [len(forced) + 1 for _, forced in steps]
        inputs = packing.step_inputs(tokens, layout, keep_last)
        device = self.loaded.device
        out = self.loaded.model(**{name: value.to(device) for name, value in inputs.items()},
                                past_key_values=self.cache, use_cache=True)
        return list(torch.split(out.logits[0].float().cpu(), keep_last))

    def reject(self, batch_row: int, count: int) -> None:
        self.cache.reject(batch_row, count)

    def keep(self, batch_rows: list[int]) -> None:
        self.cache.keep(batch_rows)


class LlamaCppSteps:
    """``BatchDecoder`` steps through a ``LlamaCppEngine`` (same interface as
    ``PackedSteps``); each row is one llama.cpp sequence.

    llama.cpp runs a step as one pass only if its sequences are numbered 1..n without gaps
    and sent in that order (with a KV stream per sequence it splits a batch into runs of
    consecutive sequences), so rows that stay after others finish are moved into the freed
    numbers and every step is sent sorted by sequence.
    """

    def __init__(self, engine: llamacpp.LlamaCppEngine, rows: list[Any], prefix_ids: list[int],
                 max_new_tokens: int) -> None:
        if rows and len(rows) >= llamacpp.MAX_SEQUENCES:
            raise GenerationError(f"{len(rows)} rows exceed llama.cpp's "
                                  f"{llamacpp.MAX_SEQUENCES - 1} sequences",
                                  hint="use a smaller --batch-size")
        self.engine = engine
        # The first step carries every prompt; any step, forced tokens up to each budget.
        most_per_step = sum(len(row.pending) for row in rows) + len(rows) * max_new_tokens
        # Each row: the prefix, its prompt and its answer (rejected forced tokens leave before
        # the next step, and forced tokens never run past the budget).
        longest = max((len(row.pending) for row in rows), default=0)
        engine.reserve(len(rows), len(prefix_ids) + longest + max_new_tokens + 1,
                       most_per_step)
        for sequence in range(1, len(rows) + 1):  # what an interrupted batch may have left
            engine.forget(sequence)
        engine.ensure_prefix(prefix_ids)
        self.sequences = list(range(1, len(rows) + 1))
        self.ends = [row.next_position for row in rows]
        if prefix_ids:
            for sequence in self.sequences:
                engine.share_prefix(sequence)

    def forward(self, rows: list[Any], steps: list[tuple[list[int], list[int]]]
                ) -> list[torch.Tensor]:
        """Run one step; per row, the logits at its forced tokens and after them."""
        parts = []
        for batch_row, (row, (pending, forced)) in enumerate(zip(rows, steps)):
            tokens = pending + forced
            parts.append((self.sequences[batch_row], row.next_position, tokens,
                          len(forced) + 1))
            self.ends[batch_row] = row.next_position + len(tokens)
        order = sorted(range(len(parts)), key=lambda b: parts[b][0])
        logits = self.engine.decode([parts[b] for b in order])
        by_sequence = torch.split(logits, [parts[b][3] for b in order])
        out: list[torch.Tensor] = [torch.empty(0)] * len(parts)
        for position, batch_row in enumerate(order):
            out[batch_row] = by_sequence[position]
        return out

    def reject(self, batch_row: int, count: int) -> None:
        self.ends[batch_row] -= count
        self.engine.forget(self.sequences[batch_row], self.ends[batch_row])

    def keep(self, batch_rows: list[int]) -> None:
        kept = set(batch_rows)
        for batch_row, sequence in enumerate(self.sequences):
            if batch_row not in kept:
                self.engine.forget(sequence)
        self.sequences = [self.sequences[b] for b in batch_rows]
        self.ends = [self.ends[b] for b in batch_rows]
        count = len(self.sequences)
        holes = iter(sorted(set(range(1, count + 1)) - set(self.sequences)))
        for batch_row, sequence in enumerate(self.sequences):
            if sequence > count:
                self.sequences[batch_row] = self.engine.move(sequence, next(holes))


def pick_closer(logits: torch.Tensor, closers: list[int]) -> int | None:
    """In closing mode: the first allowed closing token, else None (let the model choose)."""
    for token in closers:
        if torch.isfinite(logits[token]):
            return token
    return None


class JsonEndScanner:
    """Tracks braces outside strings to stop unconstrained output at the end of the object."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.started = False

    def feed(self, piece: str) -> bool:
        for char in piece:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif char == "\\":
                    self.escaped = True
                elif char == '"':
                    self.in_string = False
            elif char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth += 1
                self.started = True
            elif char in "}]":
                self.depth -= 1
                if self.started and self.depth <= 0:
                    return True
        return False
