"""``matextract distill``: a tuned teacher labels unannotated text into a silver training file
for ``matextract finetune --silver`` (finetune/distill.py says what is kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from extraction.config import AUTO_ADAPTER


def distill_command(
    out: Annotated[Path, typer.Option(help="silver annotated JSONL to write; every label, "
                                           "kept or not, goes to OUT.labels.jsonl as it is "
                                           "made (re-run to resume)")],
    schema: Annotated[str, typer.Option(help="schema to label for (pools: doping)")] = "doping",
    teacher: Annotated[str, typer.Option(help="teacher model: registry name or folder")]
    = "gemma3-270m",
    adapter: Annotated[str, typer.Option(help="the teacher's adapter ('auto': the shipped "
                                              "one for the model and schema)")] = AUTO_ADAPTER,
    fold: Annotated[int, typer.Option(help="NERRE fold whose training-split abstracts are "
                                           "the pool (its validation abstracts stay unseen)")]
    = 0,
    limit: Annotated[int | None, typer.Option(help="label only the first N texts")] = None,
    batch_size: Annotated[int, typer.Option(help="texts decoded together")] = 32,
) -> None:
    """Label unannotated materials text with a tuned teacher, keeping checked labels only."""
    from tqdm import tqdm

    from extraction.config import ExtractorConfig
    from extraction.pipeline import Extractor
    from extraction.storage.fileio import write_atomic
    from extraction.storage.jsonl import Appender, read_jsonl
    from finetune.distill import SilverLabel, label, review, tally, unlabelled_pool

    pool = unlabelled_pool(schema, fold=fold)[:limit]
    log = out.with_name(out.name + ".labels.jsonl")
    extractor = Extractor(ExtractorConfig(schema_name=schema, model=teacher, adapter=adapter,
                                          max_attempts=1, batch_size=batch_size))
    done = [SilverLabel(**row) for row in read_jsonl(
        log, required=("id", "text", "record", "reason")).rows]
    seen = {item.id for item in done}
    todo = [item for item in pool if item.id not in seen]
    out.parent.mkdir(parents=True, exist_ok=True)
    with Appender(log) as appender, tqdm(total=len(pool), initial=len(pool) - len(todo),
                                         desc="labelling", unit="text") as bar:
        for start in range(0, len(todo), batch_size):
            for item in label(extractor, todo[start:start + batch_size]):
                appender.write(item.__dict__)
                done.append(item)
                bar.update()
    # the log keeps the teacher's labels as made; every check is applied here, so a re-run
    # reviews earlier labels the same way
    reviewed = [review(extractor.spec, item) for item in done]
    kept = [item.line(schema, f"{teacher} + {extractor.config.adapter}") for item in reviewed
            if item.reason is None]
    write_atomic(out, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in kept))
    counts = tally(reviewed)
    typer.echo(json.dumps({"pool": len(pool), "labelled": len(done), **counts,
                           "silver_file": str(out)}))
