"""``matextract index``: build and query HNSW indexes of folders of documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from extraction.retrieval.indexing import INDEX_FOLDER, build_folder_index, query_index

index_app = typer.Typer(no_args_is_help=True, help="Build and query HNSW indexes of documents.")


@index_app.command("build")
def index_build(
    folder: Path,
    index: Annotated[Path | None, typer.Option(help=f"default: FOLDER/{INDEX_FOLDER}")] = None,
    embedding_model: Annotated[str, typer.Option(help="minilm | mpnet | folder")] = "minilm",
    chunk_size: int = 800, chunk_overlap: int = 100,
    m: Annotated[int, typer.Option("--m", help="HNSW M (graph degree)")] = 32,
    ef_construction: Annotated[int, typer.Option(help="HNSW build-time beam")] = 200,
) -> None:
    """Index every supported document under FOLDER (incremental: known documents are skipped)."""
    summary = build_folder_index(folder, index_dir=index or folder / INDEX_FOLDER,
                                 embedding_model=embedding_model, chunk_size=chunk_size,
                                 chunk_overlap=chunk_overlap, M=m, ef_construction=ef_construction,
                                 report=lambda line: typer.echo(line, err=True))
    typer.echo(json.dumps(summary))


@index_app.command("query")
def index_query(folder: Path, text: str, k: int = 5) -> None:
    """Nearest chunks to TEXT in the index of FOLDER."""
    index_dir = folder if (folder / "index.json").exists() else folder / INDEX_FOLDER
    typer.echo(json.dumps(query_index(index_dir, text, k=k), indent=2, ensure_ascii=False))
