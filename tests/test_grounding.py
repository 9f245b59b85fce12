"""Evidence spans: exact first, then normalised, never a false match inside another word."""

from __future__ import annotations

import pytest

from extraction.checking.grounding import Grounder, drop_ungrounded
from extraction.types import Document

TEXT = ("Er3+ doped NaYF4 and N-doped GaAs; Fe\u2082O\u2083 and TiO\u2082 \u2013 an n\u2010type "
        "SrTiO3:Nb film, studied by NDIR. Mn  doped   ZnO.")

CASES = [
    # value, expected matched texts, match kind
    ("Er3+", ["Er3+"], "exact"),
    ("Er", ["Er"], "exact"),            # followed by a digit: still the element
    ("N", ["N"], "exact"),              # N-doped, not NaYF4 nor NDIR
    ("Ga", [], None),                   # only inside GaAs
    ("Fe2O3", ["Fe\u2082O\u2083"], "normalised"),
    ("TiO2", ["TiO\u2082"], "normalised"),
    ("n-type", ["n\u2010type"], "normalised"),
    ("mn doped zno", ["Mn  doped   ZnO"], "normalised"),
    ("Nb", ["Nb"], "exact"),
    ("la", [], None),                   # short values never match case-insensitively
    ("graphene", [], None),
]


@pytest.mark.parametrize("value,expected,kind", CASES)
def test_locate(value, expected, kind):
    document = Document.from_text(TEXT)
    spans = Grounder(document).locate(value)
    assert [s.text for s in spans] == expected
    for span in spans:
        assert document.text[span.start:span.end] == span.text
        assert span.match == kind and span.page == 1


def test_pages_come_from_the_document():
    text = "Intro page.\n\nZnO doped with Al."
    document = Document(text=text, source="x.pdf", sha256="0", pages=((0, 11), (13, len(text))))
    (span,) = Grounder(document).locate("ZnO")
    assert span.page == 2


def test_all_occurrences_are_reported_up_to_a_limit():
    document = Document.from_text("ZnO. " * 9)
    assert len(Grounder(document).locate("ZnO")) == 5


def test_drop_ungrounded_removes_values_and_dangling_links():
    grounder = Grounder(Document.from_text("Mn-doped ZnO films"))
    record = {"hosts": ["ZnO", "TiO2"], "dopants": ["Mn"],
              "links": [{"host": "ZnO", "dopant": "Mn"}, {"host": "TiO2", "dopant": "Mn"}]}
    assert drop_ungrounded(record, grounder) == {
        "hosts": ["ZnO"], "dopants": ["Mn"], "links": [{"host": "ZnO", "dopant": "Mn"}]}
