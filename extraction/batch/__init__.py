"""Batch extraction over a folder: walk, plan, resume, run on an engine, write durably.

A document is done when its output line is on disk: each line is appended, flushed and
fsynced by this process alone, whatever the engine. A line carries the fingerprint of the
configuration that made it; re-running skips documents whose content hash (``sha256``) already
has a line with the current fingerprint. Lines of another configuration are moved to an
archive file beside the output, so the output always holds one configuration, one line per
document. A line torn by a kill is dropped on the next start. Engines (the local one here,
Ray in ``batch_ray``) only turn work items into outcomes and add no extraction logic.

Modules: ``inputs`` (walk the folder, plan work items), ``output`` (the output file, the
configuration fingerprint, repair and durable appends), ``local`` (the local engine),
``driver`` (options and ``run_batch``).
"""

from extraction.batch.driver import ENGINES, BatchOptions, BatchSummary, run_batch
from extraction.batch.inputs import (
    Outcome,
    Plan,
    WorkItem,
    extract_item,
    extract_items,
    load_item,
    plan,
    walk_folder,
)
from extraction.batch.local import iter_local
from extraction.batch.output import OutputPaths, fingerprint, locked, open_output

__all__ = ["ENGINES", "BatchOptions", "BatchSummary", "Outcome", "OutputPaths", "Plan",
           "WorkItem", "extract_item", "extract_items", "fingerprint", "iter_local", "load_item", "locked",
           "open_output", "plan", "run_batch", "walk_folder"]
