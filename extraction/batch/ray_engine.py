"""The Ray engine: the batch's work items through Ray Data, one model replica per actor.

The driver (``batch.run_batch``) plans, resumes and writes exactly as with the local engine;
only the middle changes: items go out as one-row blocks (so each finished document streams
back at once, not in large blocks) to a fixed pool of actors, each holding one ``Extractor``.
Actors take a GPU each where the cluster has GPUs. Files are read by the actors, so on a
multi-machine cluster the input folder must be on a shared filesystem (docs/batch.md).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extraction.batch.inputs import Outcome, WorkItem, extract_items, load_item
from extraction.batch.output import fingerprint
from extraction.errors import ConfigError, MatextractError

if TYPE_CHECKING:
    from extraction.config import ExtractorConfig


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs."""

    address: str | None = field(default=None, metadata={
        "help": "cluster to join ('auto', 'HOST:6379', 'ray://HOST:10001'); None: start a "
                "local Ray on this machine"})
    num_cpus: int | None = field(default=None, metadata={
        "help": "CPUs of the local Ray (ignored with an address); None: all"})
    actors: int | None = field(default=None, metadata={
        "help": "model replicas; None: one per GPU, else one per cpus_per_actor CPUs"})
    cpus_per_actor: float = field(default=1.0, metadata={
        "help": "CPUs reserved by each actor (also its torch thread count)"})
    gpus_per_actor: float | None = field(default=None, metadata={
        "help": "GPUs per actor; None: 1 when the cluster has GPUs, else 0"})

    def __post_init__(self) -> None:
        for name in ("num_cpus", "actors"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}: must be at least 1, not {value}")
        if self.cpus_per_actor <= 0:
            raise ConfigError(f"cpus_per_actor: must be positive, not {self.cpus_per_actor}")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ConfigError(f"gpus_per_actor: must be 0 or more, not {self.gpus_per_actor}")


class ExtractionActor:
    """One model replica. Ray Data calls it with batches of serialised work items."""

    def __init__(self, config: dict[str, Any], threads: int) -> None:
        import torch

        from extraction.pipeline import Extractor, ExtractorConfig
        from extraction.settings import force_offline, quiet_libraries

        force_offline()
        quiet_libraries()
        torch.set_num_threads(threads)  # replicas on one machine must not oversubscribe it
        parsed = ExtractorConfig(**config)
        self.extractor = Extractor(parsed)
        self.fingerprint = fingerprint(parsed)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        outcomes, parsed = [], []
        for text in batch["item"]:
            item = WorkItem.from_json(json.loads(text))
            docs, failed = load_item(item)
            if failed is not None:
                outcomes.append(failed)
            else:
                parsed.append((item, docs))
        # The Ray batch's documents are decoded together, config.batch_size at a time.
        size = self.extractor.config.batch_size
        for offset in range(0, len(parsed), size):
            outcomes += extract_items(self.extractor, parsed[offset:offset + size],
                                      self.fingerprint)
        return {"outcome": [json.dumps(o.__dict__, ensure_ascii=False) for o in outcomes]}


def _start(options: RayOptions) -> bool:
    """Join or start Ray; True if this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    # Actor output stays in Ray's log files: stderr belongs to the progress bar or JSON log.
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                              "log_to_driver": False}
    if options.address is None:
        kwargs["num_cpus"] = options.num_cpus
    try:
        ray.init(address=options.address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {options.address!r}: {exc}",
                          hint="start it with 'ray start --head' or check --address "
                               "(see docs/batch.md)") from exc
    for name in ("ray", "ray.data"):  # its INFO/WARNING chatter would break --log-json
        logging.getLogger(name).setLevel(logging.ERROR)
    return True


def plan_actors(options: RayOptions, resources: dict[str, float], items: int
                ) -> tuple[int, float, float]:
    """(actors, cpus per actor, gpus per actor) for a cluster with ``resources``."""
    gpus = options.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
    if options.actors is not None:
        actors = options.actors
    elif gpus > 0:
        actors = int(resources.get("GPU", 0) // gpus)
    else:
        actors = int(resources.get("CPU", 1) // options.cpus_per_actor)
    return max(1, min(actors, items)), options.cpus_per_actor, gpus


def _unwrap(exc: BaseException) -> MatextractError | None:
    """Our own error inside a Ray error (raised in an actor), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MatextractError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__  # type: ignore[assignment]
    return None


def iter_ray(items: list[WorkItem], config: ExtractorConfig, *, options: RayOptions,
             report: Callable[[dict[str, Any]], None] = lambda event: None
             ) -> Iterator[Outcome]:
    """Outcomes of ``items`` as the actors finish them (any order)."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError("the ray engine needs Ray",
                          hint="pip install 'matextract[ray]'") from exc
    started_here = _start(options)
    try:
        resources = ray.cluster_resources()
        actors, cpus, gpus = plan_actors(options, resources, len(items))
        report({"event": "ray_started", "address": options.address or "local",
                "cluster_cpus": resources.get("CPU", 0), "cluster_gpus": resources.get("GPU", 0),
                "actors": actors, "cpus_per_actor": cpus, "gpus_per_actor": gpus})
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the batch has its own bar
        context.print_on_execution_start = False
        rows = [{"item": json.dumps(item.to_json(), ensure_ascii=False)} for item in items]
        # Blocks of batch_size files: an actor decodes a block's documents together, and
        # results come back (and are written durably) a block at a time.
        # (at least one block per actor, so small jobs still use every actor).
        blocks = min(len(rows), max(actors, math.ceil(len(rows) / config.batch_size)))
        per_block = math.ceil(len(rows) / max(blocks, 1))
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            ExtractionActor, batch_size=min(config.batch_size, per_block),
            fn_constructor_kwargs={"config": config.model_dump(mode="json"),
                                   "threads": max(1, math.floor(cpus))},
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus, num_gpus=gpus)
        for row in dataset.iter_rows():
            yield Outcome(**json.loads(row["outcome"]))
    except MatextractError:
        raise
    except Exception as exc:
        ours = _unwrap(exc)
        if ours is not None:
            raise ours from exc
        raise MatextractError(f"the Ray job failed: {type(exc).__name__}: {exc}".splitlines()[0],
                              hint="lines written so far are kept: re-run to resume; see the "
                                   "Ray logs (/tmp/ray/session_latest/logs)") from exc
    finally:
        if started_here:
            ray.shutdown()
