"""HnswIndex against exact numpy search, persistence, and the hnswlib traps it papers over."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from extraction.retrieval import index as index_module
from extraction.errors import IndexStoreError
from extraction.retrieval.index import HnswIndex
from extraction.types import Chunk

DIM, COUNT, QUERIES, K = 64, 10_000, 200, 10


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = unit(queries) @ unit(vectors).T  # (q, n)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    vectors = rng.standard_normal((COUNT, DIM)).astype(np.float32)
    queries = rng.standard_normal((QUERIES, DIM)).astype(np.float32)
    return vectors, queries


@pytest.fixture(scope="module")
def big(data) -> HnswIndex:
    vectors, _ = data
    # ef_search=128: uniform random 64-d data is the hard case for HNSW (the default 64 sits
    # right at ~0.95 recall here); real sentence embeddings are far more clustered.
    index = HnswIndex(DIM, "fake-64", ef_search=128, max_elements=1000)  # grows 10x on the way
    for start in range(0, COUNT, 2500):  # incremental adds, as indexing documents does
        index.add(vectors[start:start + 2500], [{"row": i} for i in range(start, start + 2500)])
    return index


def test_recall_at_10_against_exact_search(big, data):
    vectors, queries = data
    truth = exact_top_k(vectors, queries, K)
    hits = big.search(queries, K)
    recall = np.mean([len({i for i, _, _ in row} & set(t.tolist())) / K
                      for row, t in zip(hits, truth)])
    assert recall >= 0.95, f"HNSW recall@{K} = {recall:.4f} on {COUNT}x{DIM} random vectors"


def test_scores_are_cosine_similarities_and_metadata_is_attached(big, data):
    vectors, queries = data
    (row,) = big.search(queries[0], 5)  # a 1-d query is one row
    ids = [i for i, _, _ in row]
    expected = unit(vectors[ids]) @ unit(queries[0])
    np.testing.assert_allclose([s for _, s, _ in row], expected, atol=1e-5)
    assert [s for _, s, _ in row] == sorted((s for _, s, _ in row), reverse=True)
    assert [m["row"] for _, _, m in row] == ids


def test_save_load_round_trip_is_exact(big, data, tmp_path):
    _, queries = data
    big.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == \
        ["index.bin", "index.json", "metadata.jsonl"]  # and no temp files left behind
    loaded = HnswIndex.load(tmp_path / "idx")
    assert loaded.params == big.params
    assert len(loaded) == len(big) == COUNT
    assert all(loaded.metadata(i) == big.metadata(i) for i in range(COUNT))
    assert loaded.search(queries[:50], K) == big.search(queries[:50], K)
    manifest = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert manifest | {"sha256": None} == {
        "format_version": 1, "dim": DIM, "embedding_model": "fake-64", "M": 32,
        "ef_construction": 200, "ef_search": 128, "space": "cosine", "count": COUNT,
        "sha256": None}
    lines = (tmp_path / "idx" / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == COUNT and json.loads(lines[7]) == {"id": 7, "metadata": {"row": 7}}


def test_incremental_add_after_load(tmp_path):
    rng = np.random.default_rng(5)
    first, second = rng.standard_normal((2, 300, 16)).astype(np.float32)
    index = HnswIndex(16, "fake-16", max_elements=300)
    index.add(first, [{"batch": 1}] * 300)
    index.save(tmp_path)
    loaded = HnswIndex.load(tmp_path)
    ids = loaded.add(second, [{"batch": 2, "n": n} for n in range(300)])  # past max_elements
    assert ids == list(range(300, 600)) and len(loaded) == 600
    (top,) = loaded.search(second[42], 1)
    assert top[0][0] == 342 and top[0][1] == pytest.approx(1.0, abs=1e-5)
    assert top[0][2] == {"batch": 2, "n": 42}
    loaded.save(tmp_path)
    assert len(HnswIndex.load(tmp_path)) == 600


def test_refuses_another_embedding_model(tmp_path):
    HnswIndex(384, "minilm").save(tmp_path)
    loaded = HnswIndex.load(tmp_path)
    loaded.ensure_compatible("minilm", 384)
    for name, dim in [("mpnet", 768), ("mpnet", 384), ("minilm", 768)]:
        with pytest.raises(IndexStoreError, match="minilm") as caught:
            loaded.ensure_compatible(name, dim)
        assert "rebuild" in caught.value.hint


def _corrupt(folder: Path, case: str) -> Path:
    if case == "missing folder":
        return folder / "nowhere"
    if case == "no manifest":
        (folder / "index.json").unlink()
    elif case == "manifest not json":
        (folder / "index.json").write_text("{ half")
    elif case == "future format":
        manifest = json.loads((folder / "index.json").read_text())
        (folder / "index.json").write_text(json.dumps(manifest | {"format_version": 99}))
    elif case == "manifest field missing":
        manifest = json.loads((folder / "index.json").read_text())
        del manifest["dim"]
        (folder / "index.json").write_text(json.dumps(manifest))
    elif case == "truncated graph":
        data = (folder / "index.bin").read_bytes()
        (folder / "index.bin").write_bytes(data[: len(data) // 2])
    elif case == "graph missing":
        (folder / "index.bin").unlink()
    elif case == "metadata line lost":
        lines = (folder / "metadata.jsonl").read_text().splitlines(keepends=True)
        (folder / "metadata.jsonl").write_text("".join(lines[:-1]))
    return folder


@pytest.mark.parametrize("case", [
    "missing folder", "no manifest", "manifest not json", "future format",
    "manifest field missing", "truncated graph", "graph missing", "metadata line lost"])
def test_corrupt_or_missing_folder_is_refused(tmp_path, case):
    index = HnswIndex(8, "fake-8")
    index.add(np.random.default_rng(0).standard_normal((20, 8)), [{"n": n} for n in range(20)])
    index.save(tmp_path)
    with pytest.raises(IndexStoreError) as caught:
        HnswIndex.load(_corrupt(tmp_path, case))
    assert caught.value.hint


def test_a_failed_save_keeps_the_old_index(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    index = HnswIndex(8, "fake-8")
    index.add(rng.standard_normal((10, 8)), [{}] * 10)
    index.save(tmp_path)
    index.add(rng.standard_normal((10, 8)), [{}] * 10)

    def crash(path: Path) -> None:  # temp files are written; nothing is renamed yet
        raise OSError("disk full")

    monkeypatch.setattr(index_module, "fsync_path", crash)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path)
    assert len(HnswIndex.load(tmp_path)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.bin", "index.json",
                                                          "metadata.jsonl"]


def test_a_save_torn_before_the_manifest_is_detected(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    index = HnswIndex(8, "fake-8")
    index.add(rng.standard_normal((10, 8)), [{}] * 10)
    index.save(tmp_path)
    index.add(rng.standard_normal((10, 8)), [{}] * 10)
    monkeypatch.setattr(index_module, "write_atomic",
                        lambda path, text: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        index.save(tmp_path)
    with pytest.raises(IndexStoreError, match="checksum"):
        HnswIndex.load(tmp_path)


@pytest.mark.parametrize("allowed_count", [30, index_module.EXACT_FILTER_LIMIT + 500])
def test_filter_ids_restricts_results(big, data, allowed_count):
    vectors, queries = data
    allowed = set(np.random.default_rng(9).choice(COUNT, allowed_count, replace=False).tolist())
    hits = big.search(queries[:20], K, filter_ids=allowed)
    assert all(len(row) == K and {i for i, _, _ in row} <= allowed for row in hits)
    ordered = np.array(sorted(allowed))
    truth = ordered[exact_top_k(vectors[ordered], queries[:20], K)]
    recall = np.mean([len({i for i, _, _ in row} & set(t.tolist())) / K
                      for row, t in zip(hits, truth)])
    assert recall >= 0.95, f"filtered recall@{K} = {recall:.3f} ({allowed_count} allowed)"


def test_k_larger_than_count():
    assert HnswIndex(4, "fake-4").search(np.ones(4), 10) == [[]]
    index = HnswIndex(4, "fake-4")
    index.add(np.eye(4) + 0.1, [{"n": n} for n in range(4)])
    (row,) = index.search(np.array([1.0, 0, 0, 0]), 50)
    assert [i for i, _, _ in row][0] == 0 and sorted(i for i, _, _ in row) == [0, 1, 2, 3]
    (row,) = index.search(np.array([1.0, 0, 0, 0]), 10, filter_ids={2, 3, 99})
    assert sorted(i for i, _, _ in row) == [2, 3]
    assert index.search(np.ones((3, 4)), 5, filter_ids=set()) == [[], [], []]


def test_rejects_bad_vectors():
    index = HnswIndex(4, "fake-4")
    with pytest.raises(ValueError, match="shape"):
        index.add(np.ones((2, 5)), [{}, {}])
    with pytest.raises(ValueError, match="metadata"):
        index.add(np.ones((2, 4)), [{}])
    with pytest.raises(ValueError, match="non-zero"):
        index.add(np.zeros((1, 4)), [{}])
    with pytest.raises(ValueError, match="shape"):
        index.search(np.ones(3), 1)
    with pytest.raises(ValueError, match="non-zero"):
        index.search(np.zeros(4), 1)


def test_chunks_are_indexed_per_document(tmp_path):
    chunks = [Chunk(text=f"chunk {n} of {doc} — Fe₂O₃", start=10 * n, end=10 * n + 9, page=1,
                    doc_sha256=doc, source=f"{doc}.pdf", index=n)
              for doc in ("aaa", "bbb") for n in range(3)]
    index = HnswIndex(8, "fake-8")
    ids = index.add_chunks(chunks, np.random.default_rng(4).standard_normal((6, 8)))
    assert index.has_document("aaa") and not index.has_document("ccc")
    assert index.ids_for_document("bbb") == set(ids[3:])
    assert index.metadata(ids[4]) == {"text": "chunk 1 of bbb — Fe₂O₃", "start": 10, "end": 19,
                                      "page": 1, "doc_sha256": "bbb", "source": "bbb.pdf",
                                      "index": 1}
    index.save(tmp_path)
    loaded = HnswIndex.load(tmp_path)
    assert loaded.ids_for_document("bbb") == set(ids[3:]) and loaded.has_document("aaa")
    (row,) = loaded.search(np.ones(8), 6, filter_ids=loaded.ids_for_document("aaa"))
    assert {m["doc_sha256"] for _, _, m in row} == {"aaa"}


def test_concurrent_adds_and_searches_are_serialised():
    rng = np.random.default_rng(6)
    index = HnswIndex(16, "fake-16", max_elements=10)  # forces resizes while others search
    index.add(rng.standard_normal((1, 16)), [{}])
    errors: list[BaseException] = []

    def writer() -> None:
        local = np.random.default_rng()  # Generators are not thread-safe
        try:
            for _ in range(20):
                index.add(local.standard_normal((25, 16)), [{}] * 25)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(100):
                index.search(np.ones(16), 5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (writer, writer, reader, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(index) == 1001
