"""Which layers int8 may quantize: fp32 vs the int8 schemes, on held-out training data.

    .venv/bin/python bench/bench_int8_schemes.py [--out bench-results/int8-schemes]

Each scheme (extraction.models.quantize_int8) runs the shipped smollm2 adapter on the 48
held-out training sentences (never the test split), one attempt, batch 16, and the table
prints strict F1 and seconds per sentence. Re-running resumes from --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMES = ("fp32", "all", "body", "head")


def main() -> None:
    from eval.report import markdown_table, summarise
    from eval.runner import RESULT_KEYS, run_grid, run_id
    from eval.tasks import load_task
    from extraction import models
    from extraction.models import loading as model_loading
    from extraction.config import ExtractorConfig
    from extraction.storage.jsonl import read_jsonl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/int8-schemes"))
    parser.add_argument("--adapter", default="doping-smollm2")
    args = parser.parse_args()
    task = load_task(f"heldout:{args.adapter}")
    rows = []
    for scheme in SCHEMES:
        model_loading.INT8_SCHEME = "all" if scheme == "fp32" else scheme
        precision = "float32" if scheme == "fp32" else "int8"
        options = {"precision": precision, "max_attempts": 1, "batch_size": 16}
        config = ExtractorConfig(model="smollm2-135m", adapter=args.adapter, **options)
        folder = args.out / scheme  # run ids do not know the scheme: one folder each
        run_grid(task, [(config, options)], out=folder, progress=False)
        lines = read_jsonl(folder / f"{run_id(task.name, config, options)}.jsonl",
                           required=RESULT_KEYS).rows
        row = summarise({"task": task.name, "schema": task.schema, "options": {
            "int8 scheme": scheme}, "model": {"name": "smollm2-135m"},
            "config": {"adapter": args.adapter}}, lines)
        rows.append(row)
        models.unload()  # the load cache does not know the scheme either
    print(markdown_table(task.name, rows))


if __name__ == "__main__":
    main()
