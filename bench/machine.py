"""What the machine allows: measured memory read bandwidth and the decode-speed floor it sets."""

from __future__ import annotations

import time
from typing import Any

import torch


def read_bandwidth_gbps(megabytes: int = 512, repeats: int = 5) -> float:
    """Best-of-N read bandwidth: a sum over a buffer far larger than any cache (all threads)."""
    buffer = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        float(buffer.sum())
        best = min(best, time.perf_counter() - started)
    return buffer.numel() * 4 / best / 1e9


def weight_bytes(model: Any) -> int:
    """Bytes a decode step must read: every weight once (tied ones once), int8-packed weights
    included, except an input-embedding table that is not also the output head (a step reads
    one row of it)."""
    unique = {t.data_ptr(): t for t in model.state_dict().values()
              if isinstance(t, torch.Tensor) and t.numel()}
    embedding = model.get_input_embeddings().weight
    head = getattr(model.get_output_embeddings(), "weight", None)
    tied = isinstance(head, torch.Tensor) and head.data_ptr() == embedding.data_ptr()
    if not tied:
        unique.pop(embedding.data_ptr(), None)
    total = sum(t.numel() * t.element_size() for t in unique.values())
    for module in model.modules():  # dynamically quantized linears hide their packed weights
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            total += weight.numel() * weight.element_size()
            total += bias.numel() * bias.element_size() if bias is not None else 0
    return total


def decode_floor_tokens_per_second(bandwidth_gbps: float, weights: int) -> float:
    """One sequence cannot decode faster than reading every weight once per token."""
    return bandwidth_gbps * 1e9 / weights


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best-of-N fp32 matrix-multiply throughput (all threads): the compute ceiling a decode
    step's matrix products can approach."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def shares_of_limits(*, tokens_per_second: float, steps_per_second: float, parameters: int,
                     weight_bytes_read: int, gflops: float, bandwidth_gbps: float
                     ) -> dict[str, float]:
    """How close a decode rate is to the machine's two ceilings: compute (about two FLOPs
    per parameter per token) and memory (every weight read once per batched step)."""
    return {"compute_share": tokens_per_second * 2 * parameters / (gflops * 1e9),
            "bandwidth_share": steps_per_second * weight_bytes_read / (bandwidth_gbps * 1e9)}
