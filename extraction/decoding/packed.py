"""Packed batch steps: the new tokens of every running sequence go through the model as ONE
sequence, without padding, and the shared prompt prefix is attended once for all of them.

Why: in a padded batch every row is as wide as the widest (one row fast-forwarding nine
forced tokens makes fifteen others compute nine positions of padding), and every row holds
its own copy of the prompt prefix's keys and values, which attention re-reads and the cache
re-concatenates at every step. Measured on the doping test set at batch 16, about half of
the positions computed were padding and a fifth of the model's time went into copying keys
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
            and getattr(config, "_attn_implementation", None) in ("sdpa", ATTENTION)
            and getattr(config, "attn_logit_softcapping", None) is None)


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
    return key.cache.attend(key.layer, query, scaling=scaling,
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
    on_device: dict[str, torch.Tensor] = field(default_factory=dict)  # rows, slots, query_index
    masks: dict[tuple, torch.Tensor] = field(default_factory=dict)  # per kind of layer


class PackedCache:
    """Keys and values of a batch of rows sharing one prompt prefix (duck-types the parts of
    transformers' ``Cache`` the supported models call)."""

    def __init__(self, rows: int, prefix: Any | None, prefix_length: int,
                 device: str = "cpu") -> None:
        # Per layer: (keys, values) of shape (1, kv_heads, P_layer, head_dim); a sliding-window
        # layer keeps only the prefix's last tokens, which end at position prefix_length - 1.
        self.prefix = ([(layer.keys[:1], layer.values[:1]) for layer in prefix.layers]
                       if prefix is not None else None)
        self.prefix_length = prefix_length
        self.device = torch.device(device)
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
                                 positions=positions, width=max(counts), used=used,
                                 on_device={name: tensor.to(self.device) for name, tensor in
                                            (("rows", rows), ("slots", slots),
                                             ("query_index", query_index))})
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
        index = index.to(self.device)
        for layer in self.keys:
            self.keys[layer] = self.keys[layer][index]
            self.values[layer] = self.values[layer][index]

    # --- the model's side -------------------------------------------------------------------

    def update(self, key: torch.Tensor, value: torch.Tensor, layer: int, *args: Any,
               **kwargs: Any) -> tuple[LayerView, LayerView]:
        """Write this step's keys/values (1, kv_heads, N, head_dim) into their rows' slots."""
        layout = self.layout
        if layer not in self.keys or self.keys[layer].shape[2] < self.capacity:
            self._grow_layer(layer, key)
        rows, slots = layout.on_device["rows"], layout.on_device["slots"]
        self.keys[layer][rows, :, slots] = key[0].transpose(0, 1)
        self.values[layer][rows, :, slots] = value[0].transpose(0, 1)
        view = LayerView(self, layer)
        return view, view

    def get_seq_length(self, layer: int = 0) -> int:
        return self.prefix_length + int(self.lengths.max())

    def attend(self, layer: int, query: torch.Tensor, *, scaling: float,
               window: int | None) -> torch.Tensor:
        """Attention of the packed queries (1, heads, N, head_dim) -> (1, N, heads, head_dim).

        Two attentions merged by their log-sum-exp (as in flash attention's blocks): every
        query against the shared prefix, as one batch-1 call; each row's queries against its
        own slots, padded to the row with the most queries of this step."""
        layout = self.layout
        keys, values = self.keys[layer], self.values[layer]
        batch, kv_heads, _, head_dim = keys.shape
        heads, count = query.shape[1], query.shape[2]
        group, width, used = heads // kv_heads, layout.width, layout.used
        rows, query_index = layout.on_device["rows"], layout.on_device["query_index"]
        prefix_mask, own_mask = self._masks(layer, window, query.dtype, group)
        # Head h reads key/value head h // group (grouped-query attention): the group's
        # queries are stacked along the query axis, so keys are never repeated.
        grouped = query[0].reshape(kv_heads, group, count, head_dim)
        padded = query.new_zeros((batch, kv_heads, group, width, head_dim))
        padded[rows, :, :, query_index] = grouped.permute(2, 0, 1, 3)
        out, lse = attention_with_lse(padded.view(batch, kv_heads, group * width, head_dim),
                                      keys[:, :, :used], values[:, :, :used], own_mask,
                                      scaling)
        out = out.view(batch, kv_heads, group, width, head_dim)[rows, :, :, query_index]
        lse = lse.view(batch, kv_heads, group, width)[rows, :, :, query_index]
        if self.prefix is not None:
            prefix_keys, prefix_values = self.prefix[layer]
            shared, shared_lse = attention_with_lse(
                grouped.reshape(1, kv_heads, group * count, head_dim), prefix_keys,
                prefix_values, prefix_mask, scaling)
            shared = shared.view(kv_heads, group, count, head_dim).permute(2, 0, 1, 3)
            shared_lse = shared_lse.view(kv_heads, group, count).permute(2, 0, 1)
            total = torch.logaddexp(lse, shared_lse)
            out = (out * torch.exp(lse - total).unsqueeze(-1).to(out.dtype)
                   + shared * torch.exp(shared_lse - total).unsqueeze(-1).to(out.dtype))
        return out.reshape(1, count, heads, head_dim)

    # --- internals --------------------------------------------------------------------------

    def _masks(self, layer: int, window: int | None, dtype: torch.dtype, group: int
               ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Additive masks (0 where a query may attend, -inf where not) on the model's device,
        one pair per step and kind of layer: for the prefix, (1, 1, group * N, P) or None
        when all of it is visible; for the rows' own slots, (B, 1, group * width, used)."""
        prefix_slots = self.prefix[layer][0].shape[2] if self.prefix is not None else 0
        layout = self.layout
        key = (prefix_slots, window, dtype, group)
        if key in layout.masks:
            return layout.masks[key]
        query_positions = layout.positions[:, None]
        own_positions = self.slot_positions[layout.rows, :layout.used]
        allowed = self.valid[layout.rows, :layout.used] & (own_positions <= query_positions)
        if window is not None:
            allowed &= query_positions - own_positions < window
        padded = torch.zeros((len(self.lengths), layout.width, layout.used), dtype=torch.bool)
        padded[:, :, 0] = True  # queries that only pad a row: any finite row will do
        padded[layout.rows, layout.query_index] = allowed
        prefix_mask = None
        if prefix_slots and window is not None:
            prefix_positions = torch.arange(self.prefix_length - prefix_slots,
                                            self.prefix_length)[None, :]
            visible = query_positions - prefix_positions < window
            prefix_mask = _additive(visible.repeat(group, 1)[None, None], dtype)
        masks = (prefix_mask, _additive(padded.repeat(1, group, 1)[:, None], dtype))
        layout.masks[key] = tuple(None if m is None else m.to(self.device) for m in masks)
        return layout.masks[key]

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


def attention_with_lse(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       mask: torch.Tensor | None, scale: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention and its log-sum-exp per query (float32), for merging attentions over
    disjoint sets of keys. On CPU: PyTorch's fused flash-attention kernel, which returns the
    log-sum-exp; elsewhere the same in plain tensor operations."""
    if query.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, False, attn_mask=mask, scale=scale)[:2]
        return out, lse
    return attention_with_lse_reference(query, key, value, mask, scale)


def attention_with_lse_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 mask: torch.Tensor | None, scale: float
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``attention_with_lse`` in plain tensor operations (any device)."""
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scale
    if mask is not None:
        scores = scores + mask
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.exp(scores - lse.unsqueeze(-1)).to(value.dtype)
    return torch.matmul(probs, value), lse


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, float("-inf"))


def step_inputs(tokens: list[list[int]], layout: StepLayout,
                keep_last: list[int]) -> dict[str, Any]:
    """Model inputs of a packed step; ``keep_last[b]``: how many of row b's last positions
    need logits (its forced tokens plus the next token)."""
    ends = torch.cumsum(torch.tensor([len(t) for t in tokens]), dim=0)
    keep = torch.cat([torch.arange(int(end) - n, int(end)) for end, n in zip(ends, keep_last)])
    return {"input_ids": torch.tensor([[t for row in tokens for t in row]]),
            "position_ids": layout.positions[None, :], "attention_mask": _PLACEHOLDER_MASK,
            "logits_to_keep": keep}
