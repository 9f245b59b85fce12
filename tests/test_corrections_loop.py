"""The corrections loop end to end, on a tiny random LLaMA: records corrected and accepted in
the web UI are saved as corrections, ``matextract finetune`` trains an adapter on them,
``matextract eval`` on the same file scores that adapter above the base model, and
``matextract extract --adapter`` answers with the corrected record (docs/corrections_loop.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from app.cli.main import app as matextract
from app.web import export, review
from app.web.state import DocumentResult
from extraction.checking.grounding import Grounder
from extraction.models import ADAPTER_CARD
from extraction.schemas import get_schema
from extraction.types import Document

# (text, the record the user ends up accepting); the model's own answer is wrong for each.
CORRECTED = [
    ("Er3+ doped NaYF4 nanocrystals were made.",
     {"hosts": ["NaYF4"], "dopants": ["Er3+"], "links": [{"host": "NaYF4", "dopant": "Er3+"}]}),
    ("Mn doped ZnO films were grown on glass.",
     {"hosts": ["ZnO"], "dopants": ["Mn"], "links": [{"host": "ZnO", "dopant": "Mn"}]}),
    ("We doped TiO2 with N for water splitting.",
     {"hosts": ["TiO2"], "dopants": ["N"], "links": [{"host": "TiO2", "dopant": "N"}]}),
]
# Enough for a 32-wide random model to memorise three answers. Over seeds 0-9, 4 failed at 25
# epochs (one step each), 1 at 30, none from 35: 50 leaves a margin. Seeded: same adapter.
TRAINING = ["--rank", "8", "--alpha", "16", "--dropout", "0", "--epochs", "50",
            "--batch-size", "3", "--learning-rate", "5e-2", "--warmup-steps", "0",
            "--val-fraction", "0", "--checkpoint-every", "1000", "--seed", "0",
            "--retry-pairs", "0"]  # one pair per correction: the memorising above holds
# The cheapest pipeline: one attempt, no Reflexion retry.
EVAL_PIPELINE = ["--set", "max_attempts=1"]
EXTRACT_PIPELINE = ["--attempts", "1"]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """A 32-wide model gains nothing from a second thread, and on a busy 2-core machine the
    threads' waiting for each other made this test 3-15x slower (6 s -> 20-100 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reviewed(number: int, text: str, corrected: dict) -> DocumentResult:
    """A document as the review page holds it after the user fixed the model's record in the
    editors (as text, like the page) and pressed Accept."""
    wrong = {"hosts": [], "dopants": [text.split()[0]], "links": []}
    extraction = {"source": f"paper{number}.txt", "sha256": f"{number:064d}", "records": [wrong],
                  "evidence": {}, "ungrounded": [], "errors": [], "timings": {},
                  "schema": {"name": "doping", "version": "1"}, "model": {"name": "tiny"},
                  "trace": [{"window": {"start": 0, "end": len(text)}, "best_attempt": 1,
                             "attempts": [{"number": 1, "record": wrong}]}]}
    document = Document.from_text(text)
    result = DocumentResult.from_extraction(f"{number}:x", f"paper{number}.txt", document,
                                            "doping", extraction)
    spec = get_schema("doping")
    fields = review.field_specs(spec)
    editors = {"hosts": "\n".join(corrected["hosts"]),
               "dopants": "\n".join(corrected["dopants"]),
               "links": json.dumps(corrected["links"])}
    checked = review.check(spec, fields, editors, wrong)
    assert checked.valid, checked.errors
    result.replace_record(0, checked.record, Grounder(document).evidence(checked.record, 0))
    result.reviews[0].status = "accepted"
    return result


def _matextract(*args: str) -> None:
    """Run a ``matextract`` command in this process, as the console script would."""
    outcome = CliRunner().invoke(matextract, list(args))
    assert outcome.exit_code == 0, (outcome.output, outcome.exception)


def _runs(results: Path) -> dict[str | None, dict]:
    """The eval summary's rows by adapter folder name (None: the base model)."""
    rows = next(iter(json.loads((results / "results.json").read_text())["tasks"].values()))
    return {Path(row["adapter"]).name if row["adapter"] else None: row for row in rows["runs"]}


def _answers(results: Path, adapter: Path) -> dict[str, dict]:
    """The eval's per-example answers of the run with ``adapter``."""
    for meta_path in results.glob("*.config.json"):
        if json.loads(meta_path.read_text())["config"]["adapter"] == str(adapter):
            lines = meta_path.with_name(meta_path.name.replace(".config.json", ".jsonl"))
            return {row["id"]: row["prediction"]
                    for row in map(json.loads, lines.read_text().splitlines())}
    raise AssertionError(f"no run with adapter {adapter} in {results}")


@pytest.mark.usefixtures("one_thread")
def test_corrections_train_an_adapter_that_eval_scores_above_the_base_model(tiny_model_dirs,
                                                                            tmp_path):
    model = str(tiny_model_dirs["llama"])
    results = [_reviewed(n, text, record) for n, (text, record) in enumerate(CORRECTED)]
    lines = export.correction_lines(results, "doping")
    corrections = tmp_path / "corrections" / "doping.jsonl"
    assert export.save_corrections(corrections, lines) == len(CORRECTED)
    assert all(line["edited"] for line in lines)
    task = f"jsonl:{corrections}"

    adapter = tmp_path / "adapters" / "mine"
    _matextract("finetune", "--task", task, "--model", model, "--out", str(adapter), *TRAINING)
    card = json.loads((adapter / ADAPTER_CARD).read_text())
    assert card["complete"] and card["data"]["pairs"] == len(CORRECTED)
    assert card["data"]["excluded"] == {} and card["data"]["excluded_ids"] == {}

    out = tmp_path / "eval"
    _matextract("eval", "--task", task, "--model", model, "--adapter", "none",
                "--adapter", str(adapter), *EVAL_PIPELINE, "--out", str(out))
    runs = _runs(out)
    base, tuned = runs[None]["normalised"], runs["mine"]["normalised"]
    for name in ("hosts", "dopants"):
        assert tuned["fields"][name]["f1"] > (base["fields"][name]["f1"] or 0.0), name
    gold = {line["id"]: line["gold"] for line in lines}
    answers = _answers(out, adapter)
    assert sum(answers[i] == gold[i] for i in gold) >= len(gold) - 1, answers

    paper = tmp_path / "paper.txt"
    paper.write_text(CORRECTED[1][0])
    extracted = tmp_path / "extracted.jsonl"
    _matextract("extract", str(paper), "--model", model, "--adapter", str(adapter),
                *EXTRACT_PIPELINE, "--out", str(extracted))
    assert json.loads(extracted.read_text())["records"] == [CORRECTED[1][1]]
