"""Batch throughput for BENCHMARKS.md: docs/min, records/min (records extracted, all
documents' together) and peak memory, per engine (local, Ray local) and backend (llama.cpp,
transformers).

    .venv/bin/python bench/bench_batch.py [--model smollm2-135m] [--limit N]
        [--engines local ray] [--backends llamacpp transformers] [--threads T]
        [--num-cpus C] [--attempts 2] [--out FILE.json]

The 193 NERRE doping abstracts (data/nerre/doping/data/raw_data.json) are written out as a
folder of .txt files (title + abstract, as the JSON loader joins them), then each engine runs
``matextract batch`` on that folder from scratch, in its own child process so that memory and
start-up are its own. The local engine gets T torch threads; Ray local gets C CPUs and one
replica per CPU (1 thread each). Peak memory is the largest sum of RSS over the child and all
its descendants (Ray's raylet, GCS and actors), sampled every 0.25 s (shared pages are
counted once per process, so it is an upper bound).

Prints a JSON record and a markdown table; ``--out`` also saves the JSON with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extraction.resources import nerre_dir  # noqa: E402  (after the path: run as a script)

RAW = nerre_dir() / "doping" / "data" / "raw_data.json"


def write_abstracts(folder: Path, limit: int | None) -> int:
    items = json.loads(RAW.read_text(encoding="utf-8"))[:limit]
    folder.mkdir(parents=True, exist_ok=True)
    for i, item in enumerate(items):
        title, abstract = " ".join(item["title"].split()), item["abstract"].strip()
        (folder / f"{i:03d}.txt").write_text(f"{title}\n{abstract}", encoding="utf-8")
    return len(items)


class PeakMemory:
    """Largest total RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.25) -> None:
        import psutil

        self.process, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # ended between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def child(args: argparse.Namespace) -> None:
    """One engine, one fresh output: print the summary plus memory as one JSON line."""
    import torch

    from extraction.batch import BatchOptions, run_batch
    from extraction.batch.ray_engine import RayOptions
    from extraction.config import ExtractorConfig
    from extraction.settings import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(args.threads)
    config = ExtractorConfig(model=args.model, max_attempts=args.attempts, device="cpu",
                             backend=args.backend)
    options = BatchOptions(engine=args.child, export=False,
                           ray=RayOptions(num_cpus=args.num_cpus))
    with PeakMemory() as memory:
        summary = run_batch(Path(args.folder), config, out=Path(args.result), options=options)
    record = summary.to_dict()
    record["peak_rss_mb"] = round(memory.peak / 2**20, 1)
    print(json.dumps(record))


def run_engine(engine: str, backend: str, folder: Path, work: Path,
               args: argparse.Namespace) -> dict:
    out = work / f"{engine}-{backend}" / "results.jsonl"
    if out.parent.exists():
        shutil.rmtree(out.parent)  # from scratch: a resumed run would skip the work
    command = [sys.executable, str(Path(__file__).resolve()), "--child", engine,
               "--folder", str(folder), "--result", str(out), "--model", args.model,
               "--attempts", str(args.attempts), "--threads", str(args.threads),
               "--backend", backend,
               "--num-cpus", str(args.num_cpus)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{engine} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    extracted = sum(len(json.loads(line).get("records") or [])
                    for line in out.read_text(encoding="utf-8").splitlines() if line.strip())
    return {"engine": engine, "backend": backend, "documents": summary["documents"],
            "processed": summary["processed"], "failures": summary["failures"],
            "records": extracted, "run_s": summary["seconds"],
            "docs_per_min": summary["docs_per_min"],
            "records_per_min": round(60 * extracted / summary["seconds"], 1),
            "process_wall_s": round(wall, 2),
            "docs_per_min_incl_process_start": round(summary["processed"] / wall * 60, 2),
            "peak_rss_mb": summary["peak_rss_mb"],
            "workers": (f"{args.num_cpus} actor(s) x 1 thread" if engine == "ray"
                        else f"1 process x {args.threads} thread(s)")}


def table(rows: list[dict]) -> str:
    lines = ["| engine | backend | workers | documents | failures | records | run s | docs/min "
             "| records/min | docs/min incl. process start | peak RSS MiB (process tree) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['backend']} | {r['workers']} | {r['processed']} | "
              f"{r['failures']} | {r['records']} | {r['run_s']} | {r['docs_per_min']} | "
              f"{r['records_per_min']} | {r['docs_per_min_incl_process_start']} | "
              f"{r['peak_rss_mb']} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=None, help="first N abstracts only")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"],
                        choices=["local", "ray"])
    parser.add_argument("--backends", nargs="+", default=["llamacpp", "transformers"],
                        choices=["llamacpp", "transformers"])
    parser.add_argument("--threads", type=int, default=cpus, help="torch threads, local")
    parser.add_argument("--num-cpus", type=int, default=cpus, help="CPUs of the local Ray")
    parser.add_argument("--attempts", type=int, default=2, help="Reflexion attempts")
    parser.add_argument("--work", type=Path, default=None, help="folder for inputs/outputs")
    parser.add_argument("--out", type=Path, default=None, help="also save the JSON here")
    parser.add_argument("--child", choices=["local", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = args.work or Path(tmp)
        folder = work / "abstracts"
        count = write_abstracts(folder, args.limit)
        rows = [run_engine(engine, backend, folder, work, args)
                for engine in args.engines for backend in args.backends]
    record = {
        "command": shlex.join([".venv/bin/python", "bench/bench_batch.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpus": cpus,
                                                       "platform": platform.platform()},
        "model": args.model, "attempts": args.attempts, "abstracts": count, "results": rows}
    print(json.dumps(record, indent=2))
    print()
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
