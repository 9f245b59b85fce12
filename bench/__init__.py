"""Benchmarks: ``matextract bench`` (extraction speed at equal accuracy, in one run) and the
standalone scripts bench_core.py, bench_index.py, bench_batch.py."""
