"""MatextractVectorStore through LangChain's own entry points, with the real MiniLM model."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from extraction.retrieval.embeddings import Embedder
from extraction.errors import IndexStoreError
from extraction.retrieval.index import HnswIndex
from extraction.types import Chunk
from extraction.retrieval.vectorstore import MatextractVectorStore

TEXTS = [
    "Anatase TiO2 films showed a band gap of 3.2 eV after annealing at 450 C.",
    "LiFePO4 cathodes delivered 165 mAh/g at 0.1C with carbon coating.",
    "Nd-doped YAG crystals were grown by the Czochralski method.",
    "The perovskite CsPbBr3 nanocrystals emitted green light at 515 nm.",
    "Graphene oxide was reduced with hydrazine to restore conductivity.",
]
METADATAS = [{"topic": t} for t in ("optics", "battery", "laser", "optics", "carbon")]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("minilm")


@pytest.fixture(scope="module")
def store(minilm) -> MatextractVectorStore:
    return MatextractVectorStore.from_texts(TEXTS, minilm, METADATAS)


@pytest.mark.slow
@pytest.mark.parametrize("query, expected", [
    ("What is the band gap of titanium dioxide?", 0),
    ("battery cathode capacity", 1),
    ("which crystal growth technique was used for the laser host?", 2),
    ("photoluminescence wavelength of halide perovskite quantum dots", 3),
])
def test_similarity_search_finds_the_right_text(store, query, expected):
    (doc,) = store.similarity_search(query, k=1)
    assert doc.page_content == TEXTS[expected]
    assert doc.metadata == METADATAS[expected] and doc.id == str(expected)


@pytest.mark.slow
def test_scores_are_descending_cosine_similarities(store, minilm):
    pairs = store.similarity_search_with_score("band gap of TiO2", k=10)  # k > count
    assert len(pairs) == len(TEXTS)
    scores = [s for _, s in pairs]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    q, d = minilm.embed(["band gap of TiO2", pairs[0][0].page_content])
    assert scores[0] == pytest.approx(float(q @ d), abs=1e-5)
    relevance = store.similarity_search_with_relevance_scores("band gap of TiO2", k=10)
    assert len(relevance) == len(TEXTS) and all(0 <= s <= 1 for _, s in relevance)


@pytest.mark.slow
def test_metadata_filter_and_retriever(store):
    docs = store.similarity_search("light", k=5, filter={"topic": "optics"})
    assert {d.metadata["topic"] for d in docs} == {"optics"} and len(docs) == 2
    retrieved = store.as_retriever(search_kwargs={"k": 1}).invoke("lithium iron phosphate")
    assert [d.page_content for d in retrieved] == [TEXTS[1]]


@pytest.mark.slow
def test_ids_and_append_only(minilm):
    store = MatextractVectorStore(minilm)
    assert store.add_texts(TEXTS[:2], ids=["a", "b"]) == ["a", "b"]
    assert [d.page_content for d in store.get_by_ids(["b", "zzz", "a"])] == [TEXTS[1], TEXTS[0]]
    with pytest.raises(ValueError, match="already present"):
        store.add_texts([TEXTS[2]], ids=["a"])
    with pytest.raises(ValueError, match="reserved"):
        store.add_texts([TEXTS[2]], [{"text": "x"}])
    assert len(store.index) == 2


@pytest.mark.slow
def test_embeddings_property_is_a_langchain_embeddings(store, minilm):
    assert isinstance(store.embeddings, Embeddings)
    np.testing.assert_allclose(store.embeddings.embed_query(TEXTS[0]),
                               minilm.embed([TEXTS[0]])[0], atol=1e-6)
    again = MatextractVectorStore.from_texts(TEXTS[:1], store.embeddings)  # unwrapped again
    assert again.index.embedding_model == "minilm"


@pytest.mark.slow
def test_save_load_and_refuse_another_model(store, tmp_path):
    store.save(tmp_path)
    loaded = MatextractVectorStore.load(tmp_path, Embedder("minilm"))
    assert loaded.similarity_search("battery", k=1)[0].page_content == TEXTS[1]
    assert loaded.get_by_ids(["3"])[0].page_content == TEXTS[3]
    with pytest.raises(IndexStoreError, match="minilm"):
        MatextractVectorStore.load(tmp_path, DeterministicFakeEmbedding(size=384))


def test_langchain_embeddings_are_accepted():
    fake = DeterministicFakeEmbedding(size=32)
    store = MatextractVectorStore.from_texts(TEXTS, fake, ids=[f"t{n}" for n in range(5)])
    assert store.index.embedding_model == "langchain:DeterministicFakeEmbedding"
    assert store.index.dim == 32
    assert store.similarity_search(TEXTS[3], k=1)[0].id == "t3"  # same text, same vector
    assert store.embeddings is fake


@pytest.mark.slow
def test_store_over_a_chunk_index_returns_chunks(minilm):
    chunks = [Chunk(text=t, start=0, end=len(t), page=None, doc_sha256=f"doc{n}",
                    source=f"paper{n}.pdf", index=0) for n, t in enumerate(TEXTS)]
    index = HnswIndex(minilm.dim, minilm.name)
    index.add_chunks(chunks, minilm.embed(TEXTS))
    store = MatextractVectorStore(minilm, index=index)
    (doc,) = store.similarity_search("graphene oxide reduction", k=1)
    assert doc.page_content == TEXTS[4] and doc.metadata["source"] == "paper4.pdf"
    assert doc.id == "4"
