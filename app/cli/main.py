"""The ``matextract`` command: every command family mounted from its own module, and our
errors turned into one clear line (app.cli.running). No extraction logic here."""

from __future__ import annotations

import typer

from app.cli.batch import batch_command
from app.cli.bench import bench_command
from app.cli.distill import distill_command
from app.cli.eval import run_eval
from app.cli.extract import extract_command
from app.cli.finetune import finetune_command
from app.cli.index import index_app
from app.cli.models import models_app, schemas_list
from app.cli.running import run_app
from app.cli.serve import app_command
from app.cli.show import show_command
from extraction.settings import force_offline

force_offline()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Evidence-linked structured extraction from materials-science papers.")
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")
app.command("schemas")(schemas_list)
app.command("extract")(extract_command)
app.command("batch", help="Extract every document in a folder, resumably.")(batch_command)
app.command("finetune")(finetune_command)
app.command("distill", help="Label unannotated text with a tuned teacher: a silver training "
            "file for 'finetune --silver'.")(distill_command)
app.command("eval", help="Evaluate models x adapters x options on a benchmark task.")(run_eval)
app.command("app", help="Start the web UI (Streamlit) on localhost.")(app_command)
app.command("show", help="Write a results file as one HTML report (opens from disk): values "
            "marked in the text by confidence.")(show_command)
app.command("bench", help="Measure extraction speed at equal accuracy, in one run.")(
    bench_command)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
