"""Batch extraction over a folder: walk, plan, resume, run on an engine, write durably.

A document is done when its output line is on disk: each line is appended, flushed and
fsynced by this process alone, whatever the engine. A line carries the fingerprint of the
configuration that made it; re-running skips documents whose content hash (``sha256``) already
has a line with the current fingerprint. Lines of another configuration are moved to an
archive file beside the output, so the output always holds one configuration, one line per
document. A line torn by a kill is dropped on the next start. Engines (the local one here,
Ray in ``ray_engine``) only turn work items into outcomes and add no extraction logic.

Modules: ``inputs`` (plan work items from the files of a folder, walked by
``extraction.documents.folders``), ``output`` (the output file, the configuration
fingerprint, repair on start; lines are appended through ``extraction.storage.jsonl``),
``local`` (the local engine), ``ray_engine`` (the Ray engine), ``driver`` (options and
``run_batch``). The names below are the package's interface.
"""

from extraction.batch.driver import ENGINES, BatchOptions, BatchSummary, run_batch
from extraction.batch.inputs import (Outcome, Plan, WorkItem, extract_item, extract_items,
                                     load_item, plan)
from extraction.batch.local import iter_local
from extraction.batch.output import OutputPaths, fingerprint, locked, open_output
from extraction.documents.folders import walk_folder

__all__ = ["ENGINES", "BatchOptions", "BatchSummary", "Outcome", "OutputPaths", "Plan",
           "WorkItem", "extract_item", "extract_items", "fingerprint", "iter_local",
           "load_item", "locked", "open_output", "plan", "run_batch", "walk_folder"]
