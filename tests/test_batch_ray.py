"""The Ray engine on a local Ray (num_cpus=2): same records and resume as the local engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extraction import models
from extraction.batch import BatchOptions, run_batch
from extraction.batch.ray_engine import RayOptions, plan_actors
from extraction.errors import ConfigError
from extraction.config import ExtractorConfig

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for every test (start-up takes seconds; local_mode no longer exists)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _lines(path: Path) -> dict[str, dict]:
    return {r["sha256"]: r for r in map(json.loads, path.read_text().splitlines())}


def _same(row: dict) -> tuple:
    return (row["source"], row["records"], row["evidence"], row["ungrounded"], row["errors"],
            row["fingerprint"], row["schema"], row["model"])


@pytest.mark.slow  # starts a local Ray cluster
def test_ray_engine_gives_the_local_engine_records_and_resumes_the_same_way(
        local_ray, tiny_model_dirs, tmp_path):
    model_dir = tiny_model_dirs["llama"]
    docs = tmp_path / "docs"
    docs.mkdir()
    texts = ["Er3+ doped SrLaMgTaO6 phosphors.", "N-doped ZnO films were grown.",
             "Mn-doped CdS quantum dots.", "Undoped TiO2 anatase powders."]
    for i, text in enumerate(texts):
        (docs / f"{i}.txt").write_text(text)
    (docs / "items.jsonl").write_text('{"abstract": "Al doped ZnO."}\n"Ga-doped ZnO."\n')
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj")
    config = ExtractorConfig(model=str(model_dir), max_attempts=1, device="cpu")

    local_out = tmp_path / "local" / "r.jsonl"
    run_batch(docs, config, out=local_out, loaded=models.load(str(model_dir), device="cpu"),
              options=BatchOptions(parse_workers=0, export=False))
    expected = _lines(local_out)
    assert len(expected) == 6

    # Half of the work was done before (same configuration): Ray does only the rest.
    ray_out = tmp_path / "ray" / "r.jsonl"
    ray_out.parent.mkdir()
    ray_out.write_text("".join(line + "\n" for line in local_out.read_text().splitlines()[:3]))
    events = []
    summary = run_batch(docs, config, out=ray_out, report=events.append,
                        options=BatchOptions(engine="ray", ray=RayOptions(actors=2)))
    assert (summary.already_done, summary.processed, summary.failures) == (3, 3, 1)
    started = next(e for e in events if e["event"] == "ray_started")
    assert started["actors"] == 2 and started["gpus_per_actor"] == 0
    got = _lines(ray_out)
    assert got.keys() == expected.keys()
    assert {k: _same(v) for k, v in got.items()} == {k: _same(v) for k, v in expected.items()}
    errors = [json.loads(x) for x in (ray_out.parent / "r.errors.jsonl").read_text().splitlines()]
    assert [(e["file"], e["stage"]) for e in errors] == [(str(docs / "broken.pdf"), "load")]
    assert (ray_out.parent / "r.csv").exists()

    again = run_batch(docs, config, out=ray_out,
                      options=BatchOptions(engine="ray", ray=RayOptions(actors=2)))
    assert (again.processed, again.already_done) == (0, 6)


def test_actor_plan_uses_gpus_when_the_cluster_has_them():
    assert plan_actors(RayOptions(), {"CPU": 16, "GPU": 4}, items=100) == (4, 1.0, 1.0)
    assert plan_actors(RayOptions(), {"CPU": 8}, items=100) == (8, 1.0, 0.0)
    assert plan_actors(RayOptions(cpus_per_actor=4), {"CPU": 8}, items=100) == (2, 4, 0.0)
    assert plan_actors(RayOptions(actors=6), {"CPU": 8}, items=3) == (3, 1.0, 0.0)
    with pytest.raises(ConfigError, match="actors"):
        RayOptions(actors=0)
