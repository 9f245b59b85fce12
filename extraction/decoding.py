"""The greedy decode loop behind ``generation.generate``: many prompts at once, one grammar
matcher per sequence, fast-forward of forced tokens with verification.

Layout of a step: every active row feeds its pending tokens (the prompt's new part at first,
then the last chosen token) followed by the tokens its grammar forces, right-aligned and
left-padded to the widest row. Positions are passed explicitly, so padding and rejected
forced tokens are simply masked out for good (attention mask 0) instead of being cut from
the KV cache: rows of different lengths share one cache tensor. Finished rows leave the
batch, so the step cost follows the rows still running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from extraction.errors import GenerationError
from extraction.models import LoadedModel


@dataclass
class Row:
    """One sequence of a batched decode."""

    pending: list[int]  # tokens to feed at the next step
    next_position: int  # position id of pending[0]
    matcher: Any | None
    scanner: Any
    generated: list[int] = field(default_factory=list)
    forward_passes: int = 0
    forced_kept: int = 0
    grammar_seconds: float = 0.0  # spent in the grammar (masks, matcher), not the model
    finish: str | None = None


class BatchDecoder:
    """Greedy decoding of rows that share a model and (optionally) a prompt-prefix cache."""

    def __init__(self, loaded: LoadedModel, constraint: Any | None, *, max_new_tokens: int,
                 stop_at_json_end: bool, fast_forward: bool, stop_ids: set[int]) -> None:
        self.loaded, self.constraint = loaded, constraint
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

    def new_row(self, fresh_ids: list[int], start_position: int) -> Row:
        return Row(pending=list(fresh_ids), next_position=start_position,
                   matcher=self.constraint.matcher() if self.constraint else None,
                   scanner=JsonEndScanner())

    def run(self, rows: list[Row], past: Any, past_length: int) -> float:
        """Decode every row to its end; returns the seconds to the first forward pass."""
        started = time.perf_counter()
        prefill_seconds = 0.0
        device = self.loaded.device
        active = list(range(len(rows)))
        attention = torch.ones((len(rows), past_length), dtype=torch.long)
        with torch.inference_mode():
            while active:
                steps = [self._step_tokens(rows[i]) for i in active]
                width = max(len(pending) + len(forced) for pending, forced in steps)
                keep = max(len(forced) for _, forced in steps) + 1
                input_ids, positions, step_mask = self._layout(
                    [rows[i] for i in active], steps, width)
                attention = torch.cat([attention, step_mask], dim=1)
                out = self.loaded.model(input_ids=input_ids.to(device),
                                        attention_mask=attention.to(device),
                                        position_ids=positions.to(device),
                                        past_key_values=past, use_cache=True,
                                        logits_to_keep=keep)
                past = out.past_key_values
                if not prefill_seconds:
                    prefill_seconds = time.perf_counter() - started
                logits = out.logits.float().cpu()  # (B, keep, V): masks are applied on CPU
                for batch_row, index in enumerate(active):
                    pending, forced = steps[batch_row]
                    rejected = self._advance(rows[index], pending, forced,
                                             logits[batch_row, keep - len(forced) - 1:])
                    if rejected:
                        attention[batch_row, -rejected:] = 0  # never attended to again
                still = [b for b, index in enumerate(active) if rows[index].finish is None]
                if len(still) < len(active):
                    if still:
                        past.batch_select_indices(torch.tensor(still, device=device))
                    attention = attention[still]
                    active = [active[b] for b in still]
        return prefill_seconds

    def _step_tokens(self, row: Row) -> tuple[list[int], list[int]]:
        if not self.fast_forward:
            return row.pending, []
        started = time.perf_counter()
        forced = self._forced(row)
        row.grammar_seconds += time.perf_counter() - started
        return row.pending, forced

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
            choice = self._choose(row, logits[kept])
            if choice != proposed:
                row.next_position += len(pending) + kept
                self._take(row, choice)
                return len(forced) - kept
            row.matcher.accept_token(proposed)
            row.generated.append(proposed)
            row.forced_kept += 1
            kept += 1
        row.next_position += len(pending) + kept
        self._take(row, self._choose(row, logits[kept]))
        return 0

    def _choose(self, row: Row, logits: torch.Tensor) -> int:
        """The greedy token for one position (masked by the grammar when constrained)."""
        if row.matcher is None:
            return int(torch.argmax(logits))
        started = time.perf_counter()
        row.matcher.fill_next_token_bitmask(self.bitmask)
        self.constraint._xgr.apply_token_bitmask_inplace(logits.unsqueeze(0), self.bitmask)
        row.grammar_seconds += time.perf_counter() - started
        if self.max_new_tokens - len(row.generated) <= self.constraint.reserve:
            closer = pick_closer(logits, self.constraint.closers)
            if closer is not None:
                return closer
        return int(torch.argmax(logits))

    def _take(self, row: Row, token: int) -> None:
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
            row.generated.append(token)
            if row.matcher.is_completed():
                row.finish = "complete"
        else:
            row.generated.append(token)
            if self.stop_at_json_end and row.scanner.feed(self.loaded.tokenizer.decode([token])):
                row.finish = "complete"
        if row.finish is None and len(row.generated) >= self.max_new_tokens:
            row.finish = "length"

    def _forced(self, row: Row) -> list[int]:
        """Tokens of the text the grammar forces next, accepted by the matcher (to verify).

        Never more than fit before the closing reserve, so no forced position is decoded in
        closing mode.
        """
        room = self.max_new_tokens - self.constraint.reserve - len(row.generated) - 1
        text = row.matcher.find_jump_forward_string()
        if not text or room <= 0:
            return []
        accepted: list[int] = []
        for token in self.loaded.tokenizer.encode(text, add_special_tokens=False)[:room]:
            if not row.matcher.accept_token(token):
                break
            accepted.append(token)
        return accepted


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
