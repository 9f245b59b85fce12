"""The real default model, end to end, on a sentence from the NERRE doping test set."""

from __future__ import annotations

import pytest

from extraction.documents import loading as documents
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.schemas import get_schema
from extraction.schemas.base import string_leaves

# NERRE doping test.json (Dagdelen et al. 2024, MIT); gold: host ZnO, dopants group-13
# metals, Al, Ga, In.
SENTENCE = ("A comparative study is presented on chemical bath-deposited ZnO films, doped with "
            "the group-13 metals Al, Ga and In.")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def extractor(default_model_dir) -> Extractor:
    return Extractor(ExtractorConfig(model="smollm2-135m", schema_name="doping",
                                     strict_grounding=True, max_attempts=2))


def test_smollm2_extracts_validated_records_with_correct_evidence(extractor):
    document = documents.load_text(SENTENCE, source="nerre-doping-test")
    result = extractor.extract(document)
    assert result.errors == []
    record = get_schema("doping").model.model_validate(result.records[0])
    assert record.hosts and record.dopants, result.trace
    values = list(string_leaves(result.records[0]))
    assert values
    assert [(e.where.path, e.value) for e in result.evidence] == values
    for item in result.evidence:
        assert item.spans, item.where
        for span in item.spans:
            assert document.text[span.start:span.end] == span.text
            assert span.text == item.value or span.match == "normalised"
            assert span.page == 1 and span.text in span.sentence
    assert result.ungrounded == []


def test_smollm2_on_a_multi_page_pdf_reports_pages(extractor, tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in ("Thermal annealing of thin films was studied.", SENTENCE):
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    path = tmp_path / "paper.pdf"
    pdf.output(str(path))
    document = documents.load(path)[0]
    result = extractor.extract(document)
    pages = {span.page for item in result.evidence for span in item.spans}
    assert pages == {2}, result.evidence


def test_shipped_adapter_is_the_default_and_finds_the_gold_triplets(extractor):
    """The README's main job uses the tuned model out of the box: 'auto' resolves to the
    shipped adapter, which finds this test sentence's host and dopants (the base model does
    not: it copies few-shot values)."""
    assert extractor.config.adapter == "doping-smollm2"
    assert extractor.loaded.adapter and extractor.examples == ()  # trained zero-shot
    result = extractor.extract(documents.load_text(SENTENCE, source="nerre-doping-test"))
    record = result.records[0]
    assert "ZnO" in " ".join(record["hosts"])
    assert {"Al", "Ga", "In"} <= set(record["dopants"]), record
