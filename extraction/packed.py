"""Packed batch steps: the new tokens of every running sequence go through the model as ONE
sequence, without padding, and the shared prompt prefix is attended once for all of them.

Why: in a padded batch every row is as wide as the widest (one row fast-forwarding nine
forced tokens makes fifteen others compute nine positions of padding), and every row holds
its own copy of the prompt prefix's keys and values, which attention re-reads and the cache
re-concatenates at every step. Measured on the doping test set at batch 16, about half of
the positions computed were padding and a third of the model's time went into copying keys
and values (BENCHMARKS.md, issue 5).

How: the model runs with our attention function, registered with transformers'
``AttentionInterface`` (any call that is not a packed step falls through to ``sdpa``
unchanged). ``PackedCache`` keeps the prefix's keys and values once, and each row's own in a
preallocated buffer written in place. A packed token attends to [the prefix, its own row's
slots], masked by position (causal, sliding window) and by slot validity: fast-forwarded
tokens the model rejected stay in the buffer, masked for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

ATTENTION = "matextract_packed"
# Architectures whose attention modules we checked against the padded path (tests/test_packed)
SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "gemma3_text", "opt"})
_GROWTH = 64  # buffer slots added beyond what a step needs, so growing is rare
# Handed to the model as its attention mask: a 4-D mask makes transformers skip building its
# own (we mask inside the attention function); the values are never read.
_PLACEHOLDER_MASK = torch.ones((1, 1, 1, 1), dtype=torch.bool)


def supports(model: Any) -> bool:
    """Whether packed steps give this model the same answers as a padded batch."""
    config = getattr(model, "config", None)
    return (getattr(config, "model_type", None) in SUPPORTED_MODEL_TYPES
            and getattr(config, "_attn_implementation", None) in ("sdpa", ATTENTION))


def enable(model: Any) -> None:
    """Route the model's attention through ``attention`` (idempotent). Calls that are not
    packed steps behave exactly as with ``sdpa``, so this is safe to leave on."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION, attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)
    if model.config._attn_implementation != ATTENTION:
        model.set_attn_implementation(ATTENTION)


def attention(module: Any, query: torch.Tensor, key: Any, value: Any,
              attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention function: a packed step when the cache handed us a
    ``LayerView``, plain ``sdpa`` otherwise."""
    if not isinstance(key, LayerView):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scaling = kwargs.get("scaling")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    return key.cache.attend(key.layer, query, scaling=scaling, softcap=kwargs.get("softcap"),
                            window=kwargs.get("sliding_window")), None


@dataclass(frozen=True)
class LayerView:
    """What ``PackedCache.update`` returns in place of key/value tensors."""

    cache: PackedCache
    layer: int


@dataclass
class StepLayout:
    """Where the packed tokens of one step belong."""

    rows: torch.Tensor  # (N,) batch row of each token
    slots: torch.Tensor  # (N,) its slot in the row's buffer
    query_index: torch.Tensor  # (N,) its index among its row's tokens of this step
    positions: torch.Tensor  # (N,) position ids
    width: int  # most tokens one row feeds in this step
    used: int  # buffer slots that can hold a valid key after this step
    masks: dict[tuple, torch.Tensor] = field(default_factory=dict)  # per (layer kind)


class PackedCache:
    """Keys and values of a batch of rows sharing one prompt prefix (duck-types the parts of
    transformers' ``Cache`` the supported models call)."""

    def __init__(self, rows: int, prefix: Any | None, prefix_length: int) -> None:
        # Per layer: (keys, values) of shape (1, kv_heads, P_layer, head_dim); a sliding-window
        # layer keeps only the prefix's last tokens, which end at position prefix_length - 1.
        self.prefix = ([(layer.keys[:1], layer.values[:1]) for layer in prefix.layers]
                       if prefix is not None else None)
        self.prefix_length = prefix_length
        self.capacity = 0
        self.lengths = torch.zeros(rows, dtype=torch.long)
        self.valid = torch.zeros((rows, 0), dtype=torch.bool)
        self.slot_positions = torch.zeros((rows, 0), dtype=torch.long)
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.layout: StepLayout | None = None

    # --- the decode loop's side -------------------------------------------------------------

    def plan(self, counts: list[int], first_positions: list[int]) -> StepLayout:
        """Lay out a step in which row b feeds ``counts[b]`` tokens from position
        ``first_positions[b]``; the slots are reserved and marked valid."""
        rows = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        query_index = torch.cat([torch.arange(n) for n in counts])
        starts = self.lengths.clone()
        slots = starts[rows] + query_index
        positions = torch.tensor(first_positions)[rows] + query_index
        self.lengths += torch.tensor(counts)
        used = int(self.lengths.max())
        self._reserve(used)
        self.valid[rows, slots] = True
        self.slot_positions[rows, slots] = positions
        self.layout = StepLayout(rows=rows, slots=slots, query_index=query_index,
                                 positions=positions, width=max(counts), used=used)
        return self.layout

    def reject(self, row: int, count: int) -> None:
        """The last ``count`` tokens of ``row`` were not taken: never attend to them again."""
        end = int(self.lengths[row])
        self.valid[row, end - count:end] = False

    def keep(self, rows: list[int]) -> None:
        """Drop the finished rows (their buffers go; the others keep their order)."""
        index = torch.tensor(rows)
        self.lengths, self.valid = self.lengths[index], self.valid[index]
        self.slot_positions = self.slot_positions[index]
        for layer in self.keys:
            self.keys[layer] = self.keys[layer][index.to(self.keys[layer].device)]
            self.values[layer] = self.values[layer][index.to(self.values[layer].device)]

    # --- the model's side -------------------------------------------------------------------

    def update(self, key: torch.Tensor, value: torch.Tensor, layer: int, *args: Any,
               **kwargs: Any) -> tuple[LayerView, LayerView]:
        """Write this step's keys/values (1, kv_heads, N, head_dim) into their rows' slots."""
        layout = self.layout
        if layer not in self.keys or self.keys[layer].shape[2] < self.capacity:
            self._grow_layer(layer, key)
        rows, slots = layout.rows.to(key.device), layout.slots.to(key.device)
        self.keys[layer][rows, :, slots] = key[0].transpose(0, 1)
        self.values[layer][rows, :, slots] = value[0].transpose(0, 1)
        view = LayerView(self, layer)
        return view, view

    def get_seq_length(self, layer: int = 0) -> int:
        return self.prefix_length + int(self.lengths.max())

    def attend(self, layer: int, query: torch.Tensor, *, scaling: float,
               softcap: float | None, window: int | None) -> torch.Tensor:
        """Attention of the packed queries (1, heads, N, head_dim) -> (1, N, heads, head_dim)."""
        layout = self.layout
        keys, values = self.keys[layer], self.values[layer]
        batch, kv_heads, _, head_dim = keys.shape
        heads, count = query.shape[1], query.shape[2]
        group, width, used = heads // kv_heads, layout.width, layout.used
        rows, query_index = layout.rows.to(query.device), layout.query_index.to(query.device)
        # Head h reads key/value head h // group (grouped-query attention): no repeated keys.
        grouped = query[0].reshape(kv_heads, group, count, head_dim)
        parts = []
        prefix_keys = prefix_values = None
        if self.prefix is not None:
            prefix_keys, prefix_values = self.prefix[layer]
            parts.append(torch.matmul(grouped.reshape(kv_heads, group * count, head_dim),
                                      prefix_keys[0].transpose(1, 2))
                         .view(kv_heads, group, count, -1))
        padded = query.new_zeros((batch, kv_heads, group, width, head_dim))
        padded[rows, :, :, query_index] = grouped.permute(2, 0, 1, 3)
        own = torch.matmul(padded.view(batch, kv_heads, group * width, head_dim),
                           keys[:, :, :used].transpose(2, 3))
        own = own.view(batch, kv_heads, group, width, used)[rows, :, :, query_index]
        parts.append(own.permute(1, 2, 0, 3))  # (kv_heads, group, N, used)
        scores = torch.cat(parts, dim=-1).float() * scaling
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        probs = torch.softmax(scores + self._mask(layer, window).to(query.device), dim=-1)
        probs = probs.to(query.dtype)
        prefix_slots = scores.shape[-1] - used
        padded_probs = probs.new_zeros((batch, kv_heads, group, width, used))
        padded_probs[rows, :, :, query_index] = probs[..., prefix_slots:].permute(2, 0, 1, 3)
        out = torch.matmul(padded_probs.view(batch, kv_heads, group * width, used),
                           values[:, :, :used])
        out = out.view(batch, kv_heads, group, width, head_dim)[rows, :, :, query_index]
        if prefix_values is not None:
            from_prefix = torch.matmul(
                probs[..., :prefix_slots].reshape(kv_heads, group * count, prefix_slots),
                prefix_values[0])
            out = out + from_prefix.view(kv_heads, group, count, head_dim).permute(2, 0, 1, 3)
        return out.reshape(1, count, heads, head_dim)

    # --- internals --------------------------------------------------------------------------

    def _mask(self, layer: int, window: int | None) -> torch.Tensor:
        """(N, prefix + used) additive float mask: 0 where a packed token may attend to a
        key, -inf where not (one per step and kind of layer)."""
        prefix_slots = self.prefix[layer][0].shape[2] if self.prefix is not None else 0
        layout = self.layout
        cached = layout.masks.get((prefix_slots, window))
        if cached is not None:
            return cached
        query_positions = layout.positions[:, None]
        own_positions = self.slot_positions[layout.rows, :layout.used]
        allowed = self.valid[layout.rows, :layout.used] & (own_positions <= query_positions)
        if window is not None:
            allowed &= query_positions - own_positions < window
        if prefix_slots:
            prefix_positions = torch.arange(self.prefix_length - prefix_slots,
                                            self.prefix_length)[None, :]
            from_prefix = (query_positions - prefix_positions < window if window is not None
                           else torch.ones((len(layout.rows), prefix_slots), dtype=torch.bool))
            allowed = torch.cat([from_prefix, allowed], dim=1)
        mask = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))
        layout.masks[(prefix_slots, window)] = mask
        return mask

    def _reserve(self, used: int) -> None:
        if used <= self.capacity:
            return
        self.capacity = used + _GROWTH
        extra = (len(self.lengths), self.capacity - self.valid.shape[1])
        self.valid = torch.cat([self.valid, torch.zeros(extra, dtype=torch.bool)], dim=1)
        self.slot_positions = torch.cat([self.slot_positions,
                                         torch.zeros(extra, dtype=torch.long)], dim=1)

    def _grow_layer(self, layer: int, key: torch.Tensor) -> None:
        rows, kv_heads, head_dim = len(self.lengths), key.shape[1], key.shape[3]
        keys = key.new_zeros((rows, kv_heads, self.capacity, head_dim))
        values = key.new_zeros((rows, kv_heads, self.capacity, head_dim))
        if layer in self.keys:
            old = self.keys[layer].shape[2]
            keys[:, :, :old] = self.keys[layer]
            values[:, :, :old] = self.values[layer]
        self.keys[layer], self.values[layer] = keys, values


def step_inputs(tokens: list[list[int]], layout: StepLayout,
                keep_last: list[int]) -> dict[str, Any]:
    """Model inputs of a packed step; ``keep_last[b]``: how many of row b's last positions
    need logits (its forced tokens plus the next token)."""
    ends = torch.cumsum(torch.tensor([len(t) for t in tokens]), dim=0)
    keep = torch.cat([torch.arange(int(end) - n, int(end)) for end, n in zip(ends, keep_last)])
    return {"input_ids": torch.tensor([[t for row in tokens for t in row]]),
            "position_ids": layout.positions[None, :], "attention_mask": _PLACEHOLDER_MASK,
            "logits_to_keep": keep}
