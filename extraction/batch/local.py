"""The local engine: one model in this process, files parsed ahead by a worker."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from extraction.batch.inputs import Event, Outcome, WorkItem, extract_items, load_item
from extraction.batch.output import fingerprint
from extraction.types import Document

if TYPE_CHECKING:  # the pipeline imports torch: parse workers must not pay for it
    from extraction.models import LoadedModel
    from extraction.config import ExtractorConfig





# --- the local engine ------------------------------------------------------------------------

def _parse_worker_init(parent: int) -> None:
    """Parse workers end when the batch process dies, even by SIGKILL, and keep the parsers'
    warnings ("EOF marker not found") to themselves: failures are reported as such."""
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def default_parse_workers() -> int:
    return 1 if (os.cpu_count() or 1) >= 2 else 0


def _parsed(items: list[WorkItem], workers: int
            ) -> Iterator[tuple[WorkItem, list[Document], Outcome | None]]:
    """Items with their documents, in order; files are parsed ahead in worker processes."""
    if workers == 0 or all(item.document is not None for item in items):
        for item in items:
            yield item, *load_item(item)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold torch threads and a model by now.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_parse_worker_init, initargs=(os.getpid(),))
    pending: deque = deque()
    upcoming = iter(items)
    try:
        while True:
            while len(pending) < 2 * workers + 1:
                item = next(upcoming, None)
                if item is None:
                    break
                pending.append((item, None if item.document is not None
                                else pool.submit(load_item, item)))
            if not pending:
                return
            item, future = pending.popleft()
            try:
                result = load_item(item) if future is None else future.result()
            except Exception:  # noqa: BLE001 - a crashed worker: parse this one here
                result = load_item(item)
            yield item, *result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def iter_local(items: list[WorkItem], config: ExtractorConfig, *, parse_workers: int,
               loaded: LoadedModel | None = None,
               report: Callable[[Event], None] = lambda event: None) -> Iterator[Outcome]:
    """The local engine: one model in this process, files parsed ahead of it."""
    from extraction.pipeline import Extractor

    fp = fingerprint(config)
    extractor = None
    group: list[tuple[WorkItem, list[Document]]] = []
    for item, docs, failed in _parsed(items, parse_workers):
        if failed is not None:
            yield failed
            continue
        if extractor is None:  # not before a document needs it: a re-run may retry only
            extractor = Extractor(config, loaded=loaded)  # bad files, and parsing goes on
            report({"event": "model_loaded", "model": extractor.loaded.name,
                    "device": extractor.loaded.device,
                    "seconds": round(extractor.load_seconds, 3)})
        group.append((item, docs))
        # Documents are decoded batch_size at a time: a kill loses at most that group.
        if sum(len(d) for _, d in group) >= config.batch_size:
            yield from extract_items(extractor, group, fp)
            group = []
    if group and extractor is not None:
        yield from extract_items(extractor, group, fp)


