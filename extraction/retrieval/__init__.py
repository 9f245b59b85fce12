"""Retrieval: sentence embeddings, the persisted HNSW index, folder indexing, a langchain
VectorStore over it, and choosing the windows of a long document worth reading."""
