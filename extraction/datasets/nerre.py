"""Read the bundled NERRE benchmark (data/nerre/, MIT licence) into the scorers' shapes.

Layout and provenance: data/nerre/README.md and data/nerre/BUNDLE.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extraction.datasets.nerre_format import (
    ENTRY_SCHEMAS,
    DopingRecord,
    Entry,
    doping_record_from_json,
    parse_doping_completion,
    parse_entries,
)
from extraction.errors import MatextractError
from extraction.resources import nerre_dir

DATA_DIR = nerre_dir()
DOPING_SPLITS = ("train", "test")
DOPING_MODELS = ("llama2", "gpt3")
ENTRY_MODELS = ("gpt3", "llama2")
N_FOLDS = 5
PROMPT_SUFFIX = "\n\n###\n\n"
# task -> (annotation file, folder of the fold splits), under general_and_mofs/data
_ENTRY_FILES = {
    "general": ("general_materials_information_annotations.jsonl", "experiments_general"),
    "mof": ("mof_annotations.jsonl", "experiments_mof_gpt3"),
}


class NerreDataError(MatextractError):
    """A NERRE file is missing or a name (task, model, split, fold) is unknown."""

    hint = "the benchmark ships in data/nerre/ of the repository; see data/nerre/BUNDLE.md"


@dataclass(frozen=True)
class DopingSentence:
    """A scored sentence of the doping benchmark and its gold graph."""

    doi: str
    text: str
    gold: DopingRecord


@dataclass(frozen=True)
class DopingPrediction:
    """A published model output for one sentence; ``record`` is None if it was unparsable."""

    sentence: DopingSentence
    completion: str
    record: DopingRecord | None


@dataclass(frozen=True)
class EntryExample:
    """One annotated abstract of the general or MOF task."""

    abstract: str
    completion: str  # the gold completion as stored (leading space, trailing END)
    entries: list[Entry]


@dataclass(frozen=True)
class EntryPrediction:
    """A published model output for one validation abstract, next to its gold entries."""

    abstract: str
    gold_completion: str
    gold: list[Entry]
    completion: str
    entries: list[Entry] | None  # None when the completion was unparsable


def _choose(kind: str, value: Any, valid: tuple[Any, ...]) -> None:
    if value not in valid:
        raise NerreDataError(f"unknown NERRE {kind} {value!r}",
                             hint=f"valid {kind}s: {', '.join(map(str, valid))}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NerreDataError(f"cannot read {path}: {exc.strerror}") from exc


def _read_json(path: Path) -> Any:
    return json.loads(_read_text(path))


def _abstract(prompt: str) -> str:
    return prompt[: -len(PROMPT_SUFFIX)] if prompt.endswith(PROMPT_SUFFIX) else prompt


# --- doping -----------------------------------------------------------------------------

def _doping_dir(data_dir: Path) -> Path:
    return data_dir / "doping" / "data"


def _doping_sentence(abstract: dict[str, Any], sentence: dict[str, Any]) -> DopingSentence:
    record = doping_record_from_json(sentence)
    if record is None:
        raise NerreDataError(f"a doping sentence of {abstract.get('doi')} is not a JSON object")
    return DopingSentence(abstract["doi"], sentence["sentence_text"], record)


def load_doping_sentences(split: str = "test", *, relevant_only: bool = True,
                          data_dir: Path = DATA_DIR) -> list[DopingSentence]:
    """Sentences of train.json or test.json; only ``relevant`` ones are scored by the paper."""
    _choose("split", split, DOPING_SPLITS)
    sentences = []
    for abstract in _read_json(_doping_dir(data_dir) / f"{split}.json"):
        for sentence in abstract["doping_sentences"]:
            if relevant_only and not sentence["relevant"]:
                continue
            sentences.append(_doping_sentence(abstract, sentence))
    return sentences


@dataclass(frozen=True)
class DopingAbstract:
    """A whole abstract of the doping benchmark with its annotated sentences.

    ``text`` is the title sentence, a newline and the abstract body: every annotated
    sentence is a substring of it (the title is the first annotated sentence)."""

    doi: str
    text: str
    sentences: tuple[DopingSentence, ...]  # the scored (relevant) ones, in order
    sentence_ids: tuple[str, ...]  # ids of ALL its sentences as training splits number them


def load_doping_abstracts_annotated(split: str = "test", *,
                                    data_dir: Path = DATA_DIR) -> list[DopingAbstract]:
    """The abstracts of train.json or test.json as whole documents."""
    _choose("split", split, DOPING_SPLITS)
    abstracts, number = [], 0
    for abstract in _read_json(_doping_dir(data_dir) / f"{split}.json"):
        sentences = abstract["doping_sentences"]
        ids = tuple(f"{abstract['doi']}#{number + i}" for i in range(len(sentences)))
        number += len(sentences)
        text = f"{sentences[0]['sentence_text']}\n{abstract['text']}" if sentences \
            else abstract["text"]
        abstracts.append(DopingAbstract(
            abstract["doi"], text,
            tuple(_doping_sentence(abstract, s) for s in sentences if s["relevant"]), ids))
    return abstracts


def load_doping_predictions(model: str, *, data_dir: Path = DATA_DIR) -> list[DopingPrediction]:
    """A published prediction file, aligned with ``load_doping_sentences("test")``.

    Relevance comes from the gold file (the prediction files mark every sentence relevant).
    """
    _choose("model", model, DOPING_MODELS)
    gold = _read_json(_doping_dir(data_dir) / "test.json")
    outputs = _read_json(_doping_dir(data_dir) / model / "inference_decoded_json.json")
    predictions = []
    for gold_abstract, abstract in zip(gold, outputs, strict=True):
        pairs = zip(gold_abstract["doping_sentences"], abstract["doping_sentences"], strict=True)
        for gold_sentence, sentence in pairs:
            if gold_sentence["sentence_text"] != sentence["sentence_text"]:
                raise NerreDataError(f"{model} predictions are not aligned with test.json at "
                                     f"{gold_abstract['doi']}")
            if not gold_sentence["relevant"]:
                continue
            target = _doping_sentence(gold_abstract, gold_sentence)
            completion = sentence["llm_completion"]
            predictions.append(
                DopingPrediction(target, completion, parse_doping_completion(completion)))
    return predictions


def load_doping_abstracts(*, data_dir: Path = DATA_DIR) -> list[dict[str, str]]:
    """All 193 abstracts of raw_data.json, unlabelled: dicts with doi, title, abstract."""
    return [{k: str(a.get(k) or "") for k in ("doi", "title", "abstract")}
            for a in _read_json(_doping_dir(data_dir) / "raw_data.json")]


# --- general materials and MOF ----------------------------------------------------------

def _entry_dir(data_dir: Path) -> Path:
    return data_dir / "general_and_mofs" / "data"


def read_fold_lines(task: str, fold: int, split: str = "val", *,
                    data_dir: Path = DATA_DIR) -> list[str]:
    """The JSONL lines of a fold's train.jsonl or val.jsonl, as upstream has them.

    train.jsonl is rebuilt from the annotation file and ``train_lines.json`` (BUNDLE.md).
    """
    _choose("task", task, tuple(_ENTRY_FILES))
    _choose("fold", fold, tuple(range(N_FOLDS)))
    _choose("split", split, ("train", "val"))
    annotations, experiments = _ENTRY_FILES[task]
    fold_dir = _entry_dir(data_dir) / experiments / f"fold_{fold}"
    if split == "val":
        return _read_text(fold_dir / "val.jsonl").splitlines()
    lines = _read_text(_entry_dir(data_dir) / annotations).splitlines()
    return [lines[i] for i in _read_json(fold_dir / "train_lines.json")]


def _gold_entries(completion: str, task: str, *, strip_backslashes: bool = False) -> list[Entry]:
    entries = parse_entries(completion, ENTRY_SCHEMAS[task], strip_backslashes=strip_backslashes)
    if entries is None:
        raise NerreDataError(f"a gold {task} completion is not a JSON list: {completion[:80]!r}")
    return entries


def _example(line: str, task: str) -> EntryExample:
    row = json.loads(line)
    return EntryExample(_abstract(row["prompt"]), row["completion"],
                        _gold_entries(row["completion"], task))


def load_entry_annotations(task: str, *, data_dir: Path = DATA_DIR) -> list[EntryExample]:
    """Every annotated abstract of the task (611 general, 507 MOF)."""
    _choose("task", task, tuple(_ENTRY_FILES))
    path = _entry_dir(data_dir) / _ENTRY_FILES[task][0]
    return [_example(line, task) for line in _read_text(path).splitlines()]


def load_entry_fold(task: str, fold: int, *, split: str = "val",
                    data_dir: Path = DATA_DIR) -> list[EntryExample]:
    """A fold's examples as (abstract, gold entries); the folds overlap (random splits)."""
    return [_example(line, task) for line in read_fold_lines(task, fold, split, data_dir=data_dir)]


def load_entry_predictions(task: str, model: str, run: int, *, strip_backslashes: bool = False,
                           data_dir: Path = DATA_DIR) -> list[EntryPrediction]:
    """Published outputs ``run_K.jsonl`` (run K is fold K's validation set).

    ``strip_backslashes`` applies to the gold and the predicted text alike; leave it False
    to reproduce the paper (see ``parse_entries``).
    """
    _choose("task", task, tuple(_ENTRY_FILES))
    _choose("model", model, ENTRY_MODELS)
    _choose("run", run, tuple(range(N_FOLDS)))
    schema = ENTRY_SCHEMAS[task]
    path = _entry_dir(data_dir) / f"predictions_{task}_{model}" / f"run_{run}.jsonl"
    predictions = []
    for line in _read_text(path).splitlines():
        row = json.loads(line)
        predictions.append(EntryPrediction(
            abstract=_abstract(row["prompt"]),
            gold_completion=row["completion"],
            gold=_gold_entries(row["completion"], task, strip_backslashes=strip_backslashes),
            completion=row["llm_completion"],
            entries=parse_entries(row["llm_completion"], schema,
                                  strip_backslashes=strip_backslashes),
        ))
    return predictions
