"""Writing results durably: atomic files, append-only JSON Lines, hashes, CSV/Parquet exports."""
