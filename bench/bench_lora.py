"""LoRA training cost for BENCHMARKS.md: seconds per optimizer step and peak memory.

    .venv/bin/python bench/bench_lora.py --model smollm2-135m [--steps 4] [--batch-size 8]
        [--grad-accumulation 1] [--gradient-checkpointing] [--lora-layers N]

Trains the doping task's first steps with the shipped adapter's recipe into a temporary
folder, in a fresh process per model so that peak RSS is that model's own. The first step
(allocator warm-up) is reported apart from the steady-state mean.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accumulation", type=int, default=1,
                        help="micro-batches per step (same gradients, less activation memory)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute each layer in backward (same gradients)")
    parser.add_argument("--lora-layers", type=int, default=None,
                        help="adapt only the top N decoder layers (default: all)")
    args = parser.parse_args()

    import torch

    from extraction.settings import quiet_libraries
    from finetune.config import FinetuneConfig
    from finetune.trainer import train

    quiet_libraries()
    config = FinetuneConfig(task="doping", model=args.model, rank=16, alpha=32, dropout=0.05,
                            epochs=3, batch_size=args.batch_size, learning_rate=1e-3,
                            grad_accumulation=args.grad_accumulation,
                            gradient_checkpointing=args.gradient_checkpointing,
                            lora_layers=args.lora_layers, warmup_steps=10, negatives=0.3,
                            val_fraction=0.1, seed=0,
                            checkpoint_every=10**6, eval_every=10**6)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        card = train(config, Path(folder), stop_after_steps=args.steps,
                     on_step=lambda step, total, loss: stamps.append(time.perf_counter()))
    steps = [b - a for a, b in zip([started] + stamps, stamps)]
    record = {
        "command": " ".join([".venv/bin/python", "bench/bench_lora.py", *sys.argv[1:]]),
        "model": args.model, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "grad_accumulation": args.grad_accumulation,
        "gradient_checkpointing": args.gradient_checkpointing, "lora_layers": args.lora_layers,
        "trainable_parameters": card["trainable_parameters"],
        "trainable_share": card["trainable_share"],
        "first_step_s_incl_setup": round(steps[0], 2),
        "steady_s_per_step": round(sum(steps[1:]) / max(1, len(steps) - 1), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
