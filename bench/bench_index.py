"""HNSW (extraction.index.HnswIndex) vs exact numpy search: recall@k and query speed.

Usage: python bench/bench_index.py [--n 20000] [--dim 384] [--out results.json]

Two data sets: ``uniform`` (isotropic Gaussian, the worst case for HNSW: no structure to
exploit) and ``clustered`` (a Gaussian mixture, closer to real sentence embeddings, which
concentrate around topics). Prints a JSON record (with the command that produced it) and a
human table; ``--out`` also writes the JSON to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from typing import Any

import hnswlib
import numpy as np

from extraction.retrieval.index import HnswIndex


def make_data(kind: str, n: int, queries: int, dim: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.standard_normal((n + queries, dim))
    else:  # 200 topics, each a direction plus noise of comparable size
        centres = rng.standard_normal((200, dim))
        topic = rng.integers(0, 200, n + queries)
        x = centres[topic] + 0.7 * rng.standard_normal((n + queries, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x[:n], x[n:]  # (n, d), (q, d)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = queries @ vectors.T  # (q, n)
    top = np.argpartition(-sims, k, axis=1)[:, :k]  # (q, k), unordered
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def bench(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    vectors, queries = make_data(kind, args.n, args.queries, args.dim, args.seed)
    truth, exact_s = timed(exact_search, vectors, queries, args.k)
    single = queries[: args.single]
    _, exact_single_s = timed(lambda: [exact_search(vectors, q[None, :], args.k) for q in single])

    index = HnswIndex(args.dim, "bench", M=args.M, ef_construction=args.ef_construction,
                      max_elements=args.n)
    _, build_s = timed(index.add, vectors, [{}] * args.n)
    rows = []
    for ef in args.ef_search:
        index.set_ef_search(ef)
        hits, batch_s = timed(index.search, queries, args.k)
        _, single_s = timed(lambda: [index.search(q, args.k) for q in single])
        recall = float(np.mean([len({i for i, _, _ in h} & set(t.tolist())) / args.k
                                for h, t in zip(hits, truth)]))
        rows.append({"ef_search": ef, f"recall@{args.k}": round(recall, 4),
                     "batch_qps": round(len(queries) / batch_s),
                     "single_query_ms": round(1000 * single_s / len(single), 3)})
    return {"data": kind, "build_s": round(build_s, 2),
            "exact": {"batch_qps": round(len(queries) / exact_s),
                      "single_query_ms": round(1000 * exact_single_s / len(single), 3)},
            "hnsw": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="indexed vectors")
    parser.add_argument("--dim", type=int, default=384, help="vector size (MiniLM: 384)")
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall/batch QPS")
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--M", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--data", nargs="+", default=["uniform", "clustered"],
                        choices=["uniform", "clustered"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the JSON record here")
    args = parser.parse_args(argv)

    record = {
        "command": "python bench/bench_index.py "
                   + shlex.join(sys.argv[1:] if argv is None else argv),
        "setup": {"n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k,
                  "M": args.M, "ef_construction": args.ef_construction, "seed": args.seed,
                  "space": "cosine"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "hnswlib": getattr(hnswlib, "__version__", "0.8.0"),
                    "processor": platform.processor() or platform.machine()},
        "results": [bench(kind, args) for kind in args.data],
    }
    print(json.dumps(record, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump(record, out, indent=2)
    print()
    print(f"{args.n} x {args.dim} vectors, {args.queries} queries, k={args.k}, M={args.M}, "
          f"ef_construction={args.ef_construction}, {os.cpu_count()} CPUs")
    head = (f"| data | method | ef_search | recall@{args.k} | batch QPS | single query ms "
            "| build s |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for res in record["results"]:
        ex = res["exact"]
        print(f"| {res['data']} | exact numpy | - | 1.0000 | {ex['batch_qps']} | "
              f"{ex['single_query_ms']} | - |")
        for row in res["hnsw"]:
            print(f"| {res['data']} | HNSW | {row['ef_search']} | {row[f'recall@{args.k}']:.4f} | "
                  f"{row['batch_qps']} | {row['single_query_ms']} | {res['build_s']} |")


if __name__ == "__main__":
    main()
