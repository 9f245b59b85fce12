"""Confidence per value: token log-probabilities, which tokens a value owns, features,
calibration and its measures, the review split, and the pipeline on tiny models."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from extraction.config import ExtractorConfig
from extraction.confidence.calibration import (Calibration, expected_calibration_error, fit,
                                               raw_confidence, reliability_bins, risk_coverage)
from extraction.confidence.filtering import split_line
from extraction.confidence.signals import FEATURES, UnitAnswer, features
from extraction.confidence.store import find_calibration, save_calibration
from extraction.confidence.tokens import string_value_spans, token_ends, value_scores
from extraction.decoding import generation
from extraction.pipeline import Extractor
from extraction.schemas.base import string_leaves
from extraction.types import Document, Evidence, FieldPath, Span

RAW = '{"hosts":["ZnO thin films",""],"dopants":["Al","Ga\\"x"],' \
      '"links":[{"host":"ZnO thin films","dopant":"Al"}],"n":3,"t":null}'


def test_string_values_are_found_with_their_paths_and_offsets():
    spans = string_value_spans(RAW)
    assert [(path, value) for path, _, _, value in spans] == [
        ("hosts[0]", "ZnO thin films"), ("dopants[0]", "Al"), ("dopants[1]", 'Ga"x'),
        ("links[0].host", "ZnO thin films"), ("links[0].dopant", "Al")]
    for _, start, end, value in spans:
        assert json.loads(f'"{RAW[start:end]}"') == value  # the text between the quotes
    # the same paths as the record walker that evidence and confidence are keyed by
    assert [p for p, *_ in spans] == [p for p, _ in string_leaves(json.loads(RAW))]
    # a torn answer gives what was read before the tear
    assert [p for p, *_ in string_value_spans(RAW[:40])] == ["hosts[0]"]


def test_a_value_owns_the_tokens_that_overlap_its_characters():
    text = '{"a":["xy","z"]}'
    # tokens: '{"a":["' | 'x' | 'y' | '","' | 'z' | '"]}'
    ends = [7, 8, 9, 12, 13, 16]
    logprobs = [-9.0, -0.1, -0.3, -9.0, -0.2, -9.0]
    scores = value_scores(text, ends, logprobs)
    assert scores["a[0]"].tokens == 2 and scores["a[0]"].low == -0.3
    assert math.isclose(scores["a[0]"].mean, -0.2) and scores["a[0]"].first == -0.1
    assert scores["a[1]"].tokens == 1 and scores["a[1]"].mean == -0.2


def test_recorded_log_probabilities_are_the_models_own(tiny_model):
    """Each generated token's log-probability equals log-softmax of one forward pass over
    the prompt and the answer (unconstrained greedy: the mask plays no part)."""
    prompt = "ZnO doped with Al"
    out = generation.generate(tiny_model, prompt, max_new_tokens=12, stop_at_json_end=False,
                              packed=False)
    assert len(out.token_logprobs) == len(out.token_ids) > 0
    prompt_ids = tiny_model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + out.token_ids])
    with torch.inference_mode():
        logits = tiny_model.model(input_ids=ids).logits[0].float()
    expected = torch.log_softmax(logits, -1)[len(prompt_ids) - 1:-1]
    for position, (token, logprob) in enumerate(zip(out.token_ids, out.token_logprobs)):
        assert logprob == pytest.approx(float(expected[position, token]), abs=1e-4)
        assert logprob <= 0.0


def test_token_ends_cover_the_decoded_text(tiny_model):
    ids = tiny_model.tokenizer('{"hosts":["ZnO"]}', add_special_tokens=False)["input_ids"]
    ends = token_ends(tiny_model.tokenizer, ids)
    text = tiny_model.tokenizer.decode(ids, skip_special_tokens=True)
    assert ends == sorted(ends) and ends[-1] == len(text)


def _evidence(path: str, value: str, grounded: bool = True) -> Evidence:
    spans = (Span(0, len(value), 1, value, "exact"),) if grounded else ()
    return Evidence(FieldPath(0, path), value, spans)


def test_features_take_a_value_where_it_was_first_written_and_count_agreement():
    raw = '{"hosts":["ZnO"],"dopants":["Al"],"links":[{"host":"ZnO","dopant":"Al"}]}'
    scores = {"hosts[0]": {"mean": -0.5, "low": -0.9, "first": -0.9, "tokens": 2},
              "dopants[0]": {"mean": -0.01, "low": -0.01, "first": -0.01, "tokens": 1},
              "links[0].host": {"mean": -0.001, "low": -0.001, "first": -0.001, "tokens": 2},
              "links[0].dopant": {"mean": -0.001, "low": -0.001, "first": -0.001, "tokens": 1}}
    first = UnitAnswer.from_attempts("ZnO doped with Al.", raw, scores, '{"hosts":[]}',
                                     retried=True)
    silent = UnitAnswer.from_attempts("The ZnO films were annealed.", '{"hosts":[]}', {},
                                      '{"hosts":[]}', retried=False)
    link_host = features(_evidence("links[0].host", "ZnO"), [first, silent])
    # the link copies the host listed before it: it is scored where the host was decided
    assert (link_host["mean"], link_host["low"]) == (-0.5, -0.9)
    assert link_host["agreement"] == 0.5  # two sentences name ZnO, one answer holds it
    assert link_host["revised"] == 1.0  # only the retry wrote it
    assert link_host["words"] == 1.0 and set(link_host) == set(FEATURES)
    # "Al" must not match inside "annealed"
    assert features(_evidence("dopants[0]", "Al"), [first, silent])["agreement"] == 1.0
    unknown = features(_evidence("hosts[0]", "MgO", grounded=False), [first, silent])
    assert unknown["grounded"] == 0.0 and unknown["mean"] == -10.0
    assert raw_confidence(unknown) < raw_confidence(link_host)


def _synthetic(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    """Values whose chance of being right follows their token surprise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        surprise = 10 ** rng.uniform(-4, 0.5)
        p = 1 / (1 + math.exp(-(-1.5 * math.log10(surprise + 1e-4) - 2.0)))
        f = {"mean": -surprise, "low": -surprise, "first": -surprise, "words": 1.0,
             "grounded": 1.0, "revised": 0.0, "agreement": 1.0}
        rows.append((f, rng.random() < p))
    return rows


def test_a_fitted_calibration_is_calibrated_on_new_data_and_round_trips():
    fitted = fit(_synthetic(3000, 0), schema="doping", fitted_on="synthetic")
    held_out = _synthetic(3000, 1)
    raw = [(raw_confidence(f), right) for f, right in held_out]
    calibrated = [(fitted.confidence(f), right) for f, right in held_out]
    assert expected_calibration_error(calibrated) < 0.03 < expected_calibration_error(raw)
    assert all(0.0 <= c <= 1.0 for c, _ in calibrated)
    again = Calibration.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again.confidence(held_out[0][0]) == fitted.confidence(held_out[0][0])
    with pytest.raises(ValueError, match="both right and wrong"):
        fit([(held_out[0][0], True)] * 5)


def test_reliability_bins_and_risk_coverage_by_hand():
    pairs = [(0.95, True), (0.9, True), (0.85, False), (0.2, False)]
    bins = reliability_bins(pairs)
    assert [(b["count"], b["accuracy"]) for b in bins] == [(1, 0.0), (1, 0.0), (2, 1.0)]
    assert expected_calibration_error(pairs) == pytest.approx(
        (0.2 + 0.85 + 2 * (1 - 0.925)) / 4)
    curve = risk_coverage([(c, r, k) for (c, r), k in zip(pairs, "abcd")], gold_total=3)
    assert [round(p["coverage"], 2) for p in curve] == [0.25, 0.5, 0.75, 1.0]
    assert [round(p["precision"], 3) for p in curve] == [1.0, 1.0, 0.667, 0.5]
    assert curve[1]["recall"] == pytest.approx(2 / 3)


def _line() -> dict:
    records = [{"hosts": ["ZnO", "TiO2"], "dopants": ["Al", "Ga"],
                "links": [{"host": "ZnO", "dopant": "Al"}, {"host": "TiO2", "dopant": "Ga"}]}]
    confidence = {"records[0].hosts[0]": 0.9, "records[0].hosts[1]": 0.3,
                  "records[0].dopants[0]": 0.9, "records[0].dopants[1]": 0.8,
                  "records[0].links[0].host": 0.9, "records[0].links[0].dopant": 0.9,
                  "records[0].links[1].host": 0.4}  # links[1].dopant: none recorded
    evidence = {key: [{"start": 0, "end": 1, "text": "x"}] for key in confidence}
    return {"source": "a.txt", "sha256": "s", "records": records, "evidence": evidence,
            "confidence": confidence, "ungrounded": ["records[0].links[1].dopant"]}


def test_the_review_split_keeps_every_value_somewhere():
    line = _line()
    kept, review = split_line(line, 0.5)
    assert kept["records"] == [{"hosts": ["ZnO"], "dopants": ["Al", "Ga"],
                                "links": [{"host": "ZnO", "dopant": "Al"}]}]
    before = sorted((v, line["confidence"].get(f"records[0].{p}", -1))
                    for p, v in string_leaves(line["records"][0]))
    after = sorted([(v, kept["confidence"].get(f"records[0].{p}", -1))
                    for p, v in string_leaves(kept["records"][0])]
                   + [(item["value"], item["confidence"] or -1) for item in review])
    assert before == after  # nothing lost, nothing doubled
    # a link goes whole when its host is low; it travels with its entry
    moved = [item for item in review if item["path"].startswith("records[0].links[1]")]
    assert len(moved) == 2 and all(item["entry"] == {"host": "TiO2", "dopant": "Ga"}
                                   for item in moved)
    # kept values keep their evidence and confidence under their new paths
    assert set(kept["confidence"]) == set(kept["evidence"]) == {
        f"records[0].{p}" for p, _ in string_leaves(kept["records"][0])}
    assert kept["ungrounded"] == [] and kept["min_confidence"] == 0.5
    assert split_line(line, 0.0)[0]["records"] == line["records"]


def test_a_calibration_is_found_for_its_adapter_and_schema_only(tmp_path: Path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    fitted = fit(_synthetic(300, 0), schema="doping", fitted_on="test")
    save_calibration(fitted, str(adapter), "m", "doping")
    assert find_calibration(str(adapter), "m", "doping") == fitted
    assert find_calibration(str(adapter), "m", "general") is None


def test_every_value_gets_a_confidence_the_same_batched_or_alone(tiny_model_dirs):
    """Tiny random models write random values; with the copy constraint they are spans of
    the text, so each gets evidence and a confidence."""
    texts = ["ZnO films doped with Al were grown.", "Er3+ doped NaYF4 nanocrystals glow.",
             "TiO2 with 2% Nb shows conductivity."]
    config = ExtractorConfig(model=str(tiny_model_dirs["llama"]), adapter=None,
                             max_new_tokens=96, max_attempts=1, batch_size=3)
    extractor = Extractor(config)
    batched = extractor.extract_group([Document.from_text(t) for t in texts])
    alone = [extractor.extract_group([Document.from_text(t)])[0] for t in texts]
    for together, single in zip(batched, alone):
        assert together.records == single.records
        values = together.to_dict()["confidence"]
        assert set(values) == {str(item.where) for item in together.evidence}
        assert all(0.0 <= c <= 1.0 for c in values.values())
        for a, b in zip(together.evidence, single.evidence):
            assert a.confidence == pytest.approx(b.confidence, abs=2e-3)
        assert together.model["calibration"] == "uncalibrated"
    assert any(item.confidence is not None for r in batched for item in r.evidence)


def test_extract_min_confidence_writes_kept_and_review_files(cli, tiny_model_dirs, tmp_path):
    paper = tmp_path / "paper.txt"
    paper.write_text("Er3+ doped SrLaMgTaO6 phosphors were prepared by solid-state reaction.")
    out = tmp_path / "r.jsonl"
    refused = cli("extract", str(paper), "--min-confidence", "0.5")
    assert refused.returncode == 2 and "--min-confidence needs --out" in refused.stderr
    assert cli("extract", str(paper), "--min-confidence", "2", "--out", str(out)
               ).returncode == 2 and not out.exists()
    common = ("extract", str(paper), "--model", str(tiny_model_dirs["llama"]), "--adapter",
              "none", "--attempts", "1", "--max-new-tokens", "96", "--out", str(out))
    assert cli(*common).returncode == 0
    full = json.loads(out.read_text())
    assert cli(*common, "--min-confidence", "1.0").returncode == 0  # everything is reviewed
    kept = json.loads(out.read_text())
    review = [json.loads(x) for x in (tmp_path / "r.review.jsonl").read_text().splitlines()]
    assert review, "the tiny model wrote no value"
    assert sorted(item["value"] for item in review) == sorted(
        v for record in full["records"] for _, v in string_leaves(record))
    assert not [v for record in kept["records"] for _, v in string_leaves(record)]
    assert kept["min_confidence"] == 1.0
