"""The public API: one-call extract(), typed results, and the JSON record made from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import extraction
from extraction import Document, Extraction, FieldPath, Span, extract
from extraction.errors import DocumentError
from extraction.schemas.base import string_leaves
from extraction.types import Evidence, confidence_map, evidence_list, evidence_map


@pytest.mark.parametrize("key, record, path, field", [
    ("records[0].hosts[1]", 0, "hosts[1]", "hosts"),
    ("records[12].materials[3].formula", 12, "materials[3].formula", "formula"),
    ("records[2].links[0].host", 2, "links[0].host", "host"),
])
def test_field_path_round_trip(key, record, path, field):
    where = FieldPath.parse(key)
    assert (where.record, where.path, where.field, str(where)) == (record, path, field, key)


@pytest.mark.parametrize("bad", ["hosts[0]", "records[x].hosts", "records[0]", ""])
def test_field_path_rejects_what_is_not_one(bad):
    with pytest.raises(ValueError, match="not a field path"):
        FieldPath.parse(bad)


def _extraction() -> Extraction:
    records = [{"hosts": ["ZnO", "MgO"], "dopants": ["Al"],
                "links": [{"host": "ZnO", "dopant": "Al"}]}]
    zno = Span(0, 3, 1, "ZnO", "exact", sentence="ZnO doped with Al.")
    al = Span(15, 17, 1, "Al", "exact")
    evidence = [Evidence(FieldPath(0, "hosts[0]"), "ZnO", (zno,), confidence=0.9),
                Evidence(FieldPath(0, "hosts[1]"), "MgO", confidence=0.2),
                Evidence(FieldPath(0, "dopants[0]"), "Al", (al,)),
                Evidence(FieldPath(0, "links[0].host"), "ZnO", (zno,)),
                Evidence(FieldPath(0, "links[0].dopant"), "Al", (al,))]
    return Extraction("a.txt", "0" * 64, {"name": "doping", "version": "1"},
                      {"name": "m", "adapter": None}, records, evidence,
                      reviewed=["records[0].dopants[0]"])


def test_the_json_record_keeps_its_format():
    data = _extraction().to_dict()
    assert list(data) == ["format", "source", "sha256", "schema", "model", "records",
                          "evidence", "confidence", "ungrounded", "reviewed", "trace",
                          "timings", "errors"]
    assert data["confidence"] == {"records[0].hosts[0]": 0.9, "records[0].hosts[1]": 0.2}
    assert data["ungrounded"] == ["records[0].hosts[1]"]
    assert data["evidence"]["records[0].hosts[0]"] == [
        {"start": 0, "end": 3, "page": 1, "text": "ZnO", "match": "exact",
         "sentence": "ZnO doped with Al."}]
    assert "sentence" not in data["evidence"]["records[0].dopants[0]"][0]
    assert "records[0].hosts[1]" not in data["evidence"]


def test_a_record_read_back_is_the_same_extraction():
    original = _extraction()
    again = Extraction.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original  # confidence and reviewed paths too
    assert [str(w) for w in again.ungrounded] == ["records[0].hosts[1]"]
    assert evidence_list(again.records, evidence_map(again.evidence),
                         confidence_map(again.evidence)) == again.evidence


def test_public_names_import_lazily_and_unknown_ones_fail():
    assert extraction.ExtractorConfig.__module__ == "extraction.config"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        extraction.nothing  # noqa: B018


def test_extract_one_call_on_a_tiny_model(tiny_model_dirs: dict[str, Path], tmp_path: Path):
    paper = tmp_path / "paper.txt"
    paper.write_text("ZnO films were doped with Al by sputtering.", encoding="utf-8")
    results = extract(paper, Document.from_text("MgO doped with Fe."), schema="doping",
                      model=str(tiny_model_dirs["llama"]), adapter="none", max_attempts=1,
                      max_new_tokens=64)
    assert [r.source for r in results] == [str(paper), "<text>"]
    for result in results:
        assert result.schema["name"] == "doping" and result.model["adapter"] is None
        assert len(result.trace) == 1 and result.records  # the constraint makes it parse
        # every string value of the records has an Evidence entry, grounded or not
        leaves = [(position, path) for position, record in enumerate(result.records)
                  for path, _ in string_leaves(record)]
        assert [(e.where.record, e.where.path) for e in result.evidence] == leaves


def test_extract_refuses_a_missing_file_before_loading_a_model(tmp_path: Path):
    with pytest.raises(DocumentError, match="nope.txt"):
        extract(tmp_path / "nope.txt", model="/nonexistent-model-folder")
