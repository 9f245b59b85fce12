"""Our normalised scorer (labelled "normalised", never mixed with the paper's strict one)."""

from __future__ import annotations

import pytest

from eval.normalised import is_formula, normalise, score_example, view


@pytest.mark.parametrize("raw, expected", [
    ("Ca 3 Co 4 O 9", "Ca3Co4O9"),          # whitespace inside a formula goes
    ("Ca3Co4O9", "Ca3Co4O9"),
    ("TiO\u2082", "TiO2"),                  # subscript digit
    ("Er\u00b3\u207a", "Er3+"),             # superscript digit and plus
    ("Er 3+", "Er3+"),                      # a charge glued back to its element
    ("Li1\u2212xFexPO4", "Li1-xFexPO4"),    # unicode minus
    ("Al\u2013doped ZnO films.", "al-doped ZnO films"),  # en dash, trailing period, case
    ("  Perovskite   Solar\tCells ", "perovskite solar cells"),
    ("ZnO TiO2", "ZnO TiO2"),               # two formulas stay two words
    ("ZIF-8", "zif-8"),                     # no element Z: not a formula, case-folded
    ("NaYF4:Er3+,Yb3+", "NaYF4:Er3+,Yb3+"),
    ("10 mol%", "10 mol%"),
    ("MOF-5;", "mof-5"),
    ("...", ""),
])
def test_normalise(raw, expected):
    assert normalise(raw) == expected


@pytest.mark.parametrize("token, formula", [
    ("Co", True), ("CO", True), ("ZnO", True), ("Er3+", True), ("Zn4O(BDC)3", True),
    ("ZIF-8", False), ("doped", False), ("MOF", False), ("3", False), ("Ga-doped", False),
])
def test_is_formula(token, formula):
    assert is_formula(token) is formula


def test_formula_case_matters_but_word_case_does_not():
    gold = {"hosts": ["Co", "Perovskite"], "dopants": [], "links": []}
    predicted = {"hosts": ["CO", "perovskite"], "dopants": [], "links": []}
    scores = score_example(gold, predicted, "doping")
    assert scores["fields"]["hosts"] == [1, 1, 1]  # perovskite matches; CO is not cobalt
    assert scores["exact"] == 0


def test_whole_entities_are_compared_not_words():
    gold = {"hosts": ["ZnO thin films"], "dopants": ["Al"], "links": [
        {"host": "ZnO thin films", "dopant": "Al"}]}
    predicted = {"hosts": ["ZnO"], "dopants": ["Al\u00a0"], "links": [
        {"host": "ZnO", "dopant": "Al"}]}
    scores = score_example(gold, predicted, "doping")
    assert scores["fields"]["hosts"] == [0, 1, 1]
    assert scores["fields"]["dopants"] == [1, 0, 0]
    assert scores["links"]["host-dopant"] == [0, 1, 1]


def test_perfect_doping_prediction_is_exact_after_normalisation():
    gold = {"hosts": ["Ca3Co4O9"], "dopants": ["Er3+"],
            "links": [{"host": "Ca3Co4O9", "dopant": "Er3+"}]}
    predicted = {"hosts": ["Ca 3 Co 4 O 9"], "dopants": ["Er\u00b3\u207a"],
                 "links": [{"host": "Ca 3 Co 4 O 9", "dopant": "Er 3+"}]}
    scores = score_example(gold, predicted, "doping")
    assert scores == {"fields": {"hosts": [1, 0, 0], "dopants": [1, 0, 0]},
                      "links": {"host-dopant": [1, 0, 0]}, "exact": 1}


def test_no_answer_scores_as_empty():
    gold = {"hosts": ["ZnO"], "dopants": ["Al"], "links": [{"host": "ZnO", "dopant": "Al"}]}
    scores = score_example(gold, None, "doping")
    assert scores["fields"] == {"hosts": [0, 0, 1], "dopants": [0, 0, 1]}
    assert scores["links"]["host-dopant"] == [0, 0, 1]


def test_general_links_join_root_and_each_value():
    record = {"materials": [
        {"formula": "LiFePO4", "name": "lithium iron phosphate", "acronym": "LFP",
         "applications": ["Cathode", ""], "structure_or_phase": ["olivine"], "description": []},
        {"formula": "", "name": "graphite", "acronym": "", "applications": ["anode"],
         "structure_or_phase": [], "description": []}]}
    v = view(record, "general")
    assert v.fields["applications"] == {"cathode", "anode"}
    assert v.fields["formula"] == {"LiFePO4"}
    assert v.links["formula-applications"] == {"LiFePO4|cathode"}  # no root, no link
    assert v.links["formula-acronym"] == {"LiFePO4|lfp"}


def test_mof_links_use_name_of_mof():
    record = {"mofs": [{"name_of_mof": "ZIF-8", "mof_formula": "", "mof_description": [],
                        "guest_species": ["CO\u2082"], "applications": []}]}
    assert view(record, "mof").links["name_of_mof-guest_species"] == {"zif-8|CO2"}


def test_a_schema_of_ones_own_compares_every_string_leaf_by_path():
    gold = {"alloys": [{"name": "Inconel 718", "elements": ["Ni", "Cr"]}]}
    predicted = {"alloys": [{"name": "inconel 718", "elements": ["Ni"]},
                            {"name": "Ti-6Al-4V", "elements": []}]}
    scores = score_example(gold, predicted, "my_schema.json")
    assert scores["fields"] == {"alloys.name": [1, 1, 0], "alloys.elements": [1, 0, 1]}
    assert scores["links"] == {}
