"""The NERRE paper's strict scorers (Dagdelen et al., Nat. Commun. 15, 1418, 2024).

"Strict" means words split on single spaces and compared by exact string equality; the
paper calls it a rough lower bound. Label every number from here as strict. The rules are
in data/nerre/SCORING.md; where the published numbers needed more than SCORING.md says,
the function that does it says why. Pure functions: nothing here reads files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extraction.datasets.nerre_format import (DopingRecord, Entry, EntrySchema,
                                             completion_body, doping_completion,
                                             normalize_entry)

NAN = math.nan


# --- shared -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Score:
    """Counts and ratios of one strict comparison.

    A ratio whose denominator is zero is nan, and so is f1 when precision or recall is:
    the paper averages folds with pandas, which skips nan, and rare link types (e.g.
    formula-acronym) only reproduce with that rule.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> "Score":
        precision = tp / (tp + fp) if tp + fp else NAN
        recall = tp / (tp + fn) if tp + fn else NAN
        defined = not (math.isnan(precision) or math.isnan(recall))
        f1 = tp / (tp + (fp + fn) / 2) if defined else NAN
        return cls(tp, fp, fn, precision, recall, f1)


def nanmean(values: Iterable[float]) -> float:
    """Mean of the values that are not nan (nan if none is), like pandas' ``mean``."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else NAN


def mean_score(scores: Sequence[Score]) -> Score:
    """The paper's cross-validation average: counts summed, each ratio averaged over folds."""
    return Score(
        tp=sum(s.tp for s in scores), fp=sum(s.fp for s in scores), fn=sum(s.fn for s in scores),
        precision=nanmean(s.precision for s in scores),
        recall=nanmean(s.recall for s in scores),
        f1=nanmean(s.f1 for s in scores),
    )


def split_words(text: str) -> list[str]:
    """Words of ``text`` split on single spaces, empty words dropped (the paper's tokens)."""
    return [word for word in text.split(" ") if word]


def jaro_winkler(a: str, b: str, *, prefix_weight: float = 0.1,
                 boost_threshold: float = 0.7) -> float:
    """Jaro-Winkler similarity as jellyfish computes it.

    The prefix boost applies only when the Jaro similarity exceeds ``boost_threshold``;
    boosting always moves the GPT-3 doping mean from the published 0.96578 to 0.96745.
    """
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    window = max(max(len(a), len(b)) // 2 - 1, 0)
    a_hit, b_hit = [False] * len(a), [False] * len(b)
    matches = 0
    for i, char in enumerate(a):
        for j in range(max(0, i - window), min(len(b), i + window + 1)):
            if not b_hit[j] and b[j] == char:
                a_hit[i] = b_hit[j] = True
                matches += 1
                break
    if not matches:
        return 0.0
    b_matched = (char for char, hit in zip(b, b_hit) if hit)
    half_transpositions = sum(
        char != next(b_matched) for char, hit in zip(a, a_hit) if hit)
    transpositions = half_transpositions // 2
    jaro = (matches / len(a) + matches / len(b) + (matches - transpositions) / matches) / 3
    if jaro <= boost_threshold:
        return jaro
    prefix = 0
    for char_a, char_b in zip(a[:4], b[:4]):
        if char_a != char_b:
            break
        prefix += 1
    return jaro + prefix * prefix_weight * (1 - jaro)


# --- doping (one sentence at a time, pooled over the test set) ----------------------------

DOPING_ENTITY_TYPES = ("basemats", "dopants")


@dataclass(frozen=True)
class DopingScores:
    """Strict doping scores pooled over sentences.

    ``exact_match`` and ``jaro_winkler`` compare raw completions with the gold completion
    (``doping_completion``); they are None when no raw completions were given.
    """

    basemats: Score
    dopants: Score
    triplets: Score
    n_sentences: int
    parse_rate: float
    exact_match: float | None
    jaro_winkler: float | None


def entity_words(entities: Mapping[str, str]) -> list[str]:
    """All words of one entity type's strings (duplicates kept)."""
    return split_words(" ".join(entities.values()))


def word_counts(gold: Sequence[str], predicted: Sequence[str]) -> tuple[int, int, int]:
    """(tp, fp, fn): gold words found among the predicted words, predicted words not in gold."""
    tp = sum(word in predicted for word in gold)
    fp = sum(word not in gold for word in predicted)
    return tp, fp, len(gold) - tp


def link_triplets(record: DopingRecord) -> list[str]:
    """"<basemat word> <dopant word>" for every linked pair of entities (with multiplicity)."""
    triplets = []
    for dopant_id, basemat_ids in record.links.items():
        dopant = record.dopants.get(dopant_id)
        if dopant is None:
            continue
        for basemat_id in basemat_ids:
            basemat = record.basemats.get(basemat_id)
            if basemat is None:
                continue
            triplets += [f"{b} {d}" for b in split_words(basemat) for d in split_words(dopant)]
    return triplets


EMPTY_DOPING = DopingRecord(basemats={}, dopants={}, links={})


def score_doping(gold: Sequence[DopingRecord], predicted: Sequence[DopingRecord | None], *,
                 completions: Sequence[str] | None = None) -> DopingScores:
    """Strict doping scores of aligned sentences; None predictions count as unparsable."""
    if len(gold) != len(predicted) or (completions is not None and len(completions) != len(gold)):
        raise ValueError("gold, predicted (and completions) must be aligned sentence by sentence")
    entity_counts = {kind: [0, 0, 0] for kind in DOPING_ENTITY_TYPES}
    correct = n_predicted = n_gold = 0
    for gold_record, record in zip(gold, predicted):
        record = record or EMPTY_DOPING
        for kind in DOPING_ENTITY_TYPES:
            counts = word_counts(entity_words(getattr(gold_record, kind)),
                                 entity_words(getattr(record, kind)))
            entity_counts[kind] = [total + c for total, c in zip(entity_counts[kind], counts)]
        gold_triplets, predicted_triplets = link_triplets(gold_record), link_triplets(record)
        # The paper counts correct triplets from the gold side (with multiplicity) and
        # divides by the number predicted, so fp below is "predicted minus correct".
        correct += sum(t in predicted_triplets for t in gold_triplets)
        n_predicted += len(predicted_triplets)
        n_gold += len(gold_triplets)
    exact = similarity = None
    if completions is not None:
        gold_texts = [doping_completion(r) for r in gold]
        exact = sum(g == c for g, c in zip(gold_texts, completions)) / max(len(gold), 1)
        similarity = nanmean(jaro_winkler(g, c) for g, c in zip(gold_texts, completions))
    return DopingScores(
        basemats=Score.from_counts(*entity_counts["basemats"]),
        dopants=Score.from_counts(*entity_counts["dopants"]),
        triplets=Score.from_counts(correct, n_predicted - correct, n_gold - correct),
        n_sentences=len(gold),
        parse_rate=sum(r is not None for r in predicted) / max(len(predicted), 1),
        exact_match=exact, jaro_winkler=similarity,
    )


# --- general materials and MOF (one abstract at a time, summed per fold) -----------------

@dataclass(frozen=True)
class EntryScores:
    """Strict scores of one fold (or, from ``mean_entry_scores``, their mean).

    ``entities`` maps each field to its word-level score, ``links`` each non-root field to
    the score of its (root, field) links. ``jaro_winkler`` is None without raw completions.
    """

    entities: dict[str, Score]
    links: dict[str, Score]
    exact_match: float
    parse_rate: float
    n_abstracts: int
    jaro_winkler: float | None


def value_words(value: Any) -> list[str]:
    """Words of a field value: a string, or each string of a list."""
    texts = value if isinstance(value, list) else [value]
    return [word for text in texts for word in split_words(str(text))]


def field_words(entries: Sequence[Entry], field: str) -> set[str]:
    """The set of words of one field over all entries of an abstract."""
    return {word for entry in entries for word in value_words(entry.get(field, ""))}


def link_pairs(entries: Sequence[Entry], schema: EntrySchema, field: str) -> set[str]:
    """"root|||word" for every word of ``field`` in each entry with a root.

    The root stays whole. Two details needed to reproduce the paper: a word equal to the
    root is a self-link and is skipped (general Llama-2 formula-name 0.367 and the MOF
    description links), and an entry whose root is not a string (six MOF gold entries have
    name_of_mof as a one-element list) gives no links (MOF name-application 0.573/0.531).
    """
    pairs = set()
    for entry in entries:
        root = entry.get(schema.root)
        if not isinstance(root, str) or not root:
            continue
        pairs |= {f"{root}|||{word}" for word in value_words(entry.get(field, ""))
                  if word != root}
    return pairs


def set_counts(gold: set[str], predicted: set[str]) -> tuple[int, int, int]:
    """(tp, fp, fn) of two sets."""
    return len(gold & predicted), len(predicted - gold), len(gold - predicted)


def _canonical(entries: Sequence[Entry]) -> list[str]:
    return sorted(json.dumps(entry, sort_keys=True) for entry in entries)


def score_entries(gold: Sequence[Sequence[Entry]], predicted: Sequence[Sequence[Entry] | None],
                  schema: EntrySchema, *,
                  completions: Sequence[tuple[str, str]] | None = None) -> EntryScores:
    """Strict scores of one fold: per-abstract set counts summed over the abstracts.

    ``predicted[i]`` is None when the completion was unparsable (scored as no entries).
    ``completions`` holds (gold, predicted) raw texts for the Jaro-Winkler similarity.
    """
    if len(gold) != len(predicted) or (completions is not None and len(completions) != len(gold)):
        raise ValueError("gold, predicted (and completions) must be aligned abstract by abstract")
    linked = [f for f in schema.fields if f != schema.root]
    entity_counts = {f: [0, 0, 0] for f in schema.fields}
    link_counts = {f: [0, 0, 0] for f in linked}
    exact = 0
    for gold_entries, entries in zip(gold, predicted):
        gold_entries = [normalize_entry(e, schema) for e in gold_entries]
        entries = [normalize_entry(e, schema) for e in entries or []]
        for f in schema.fields:
            counts = set_counts(field_words(gold_entries, f), field_words(entries, f))
            entity_counts[f] = [total + c for total, c in zip(entity_counts[f], counts)]
        for f in linked:
            counts = set_counts(link_pairs(gold_entries, schema, f),
                                link_pairs(entries, schema, f))
            link_counts[f] = [total + c for total, c in zip(link_counts[f], counts)]
        exact += _canonical(gold_entries) == _canonical(entries)
    n = max(len(gold), 1)
    similarity = None
    if completions is not None:
        similarity = nanmean(jaro_winkler(completion_body(g), completion_body(p))
                             for g, p in completions)
    return EntryScores(
        entities={f: Score.from_counts(*c) for f, c in entity_counts.items()},
        links={f: Score.from_counts(*c) for f, c in link_counts.items()},
        exact_match=exact / n,
        parse_rate=sum(p is not None for p in predicted) / n,
        n_abstracts=len(gold),
        jaro_winkler=similarity,
    )


def mean_entry_scores(folds: Sequence[EntryScores]) -> EntryScores:
    """The paper's reported value: each ratio averaged over folds (nan folds skipped)."""
    if not folds:
        raise ValueError("mean_entry_scores needs at least one fold")
    similarities = [f.jaro_winkler for f in folds if f.jaro_winkler is not None]
    return EntryScores(
        entities={k: mean_score([f.entities[k] for f in folds]) for k in folds[0].entities},
        links={k: mean_score([f.links[k] for f in folds]) for k in folds[0].links},
        exact_match=nanmean(f.exact_match for f in folds),
        parse_rate=nanmean(f.parse_rate for f in folds),
        n_abstracts=sum(f.n_abstracts for f in folds),
        jaro_winkler=nanmean(similarities) if similarities else None,
    )
