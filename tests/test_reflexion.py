"""Reflexion: a failed first attempt leads to a second one whose prompt holds the reflection."""

from __future__ import annotations

import json

import pytest

from extraction.checking.grounding import Grounder
from extraction.pipeline import Extractor, ExtractorConfig
from extraction.checking.reflexion import Attempt, Trial, run, run_many
from extraction.schemas import get_schema
from extraction.types import Document

TEXT = "Er3+ doped SrLaMgTaO6 phosphors were prepared by a sol-gel route."


def test_failed_attempt_is_retried_with_the_reflection_in_the_prompt(tiny_model):
    # extractive off: random weights then invent values, which the evaluator must object to
    extractor = Extractor(ExtractorConfig(schema_name="doping", max_attempts=2,
                                          extractive=False), loaded=tiny_model)
    result = extractor.extract(Document.from_text(TEXT))
    first, second = result.trace[0]["attempts"]
    # Random weights either leave hosts empty although the text says "doped", or invent
    # strings that are not in the text: either way the evaluator must object.
    assert first["signals"] and (first["missing"] or first["ungrounded"])
    assert first["reflection"]
    assert second["feedback"] == first["signals"] + [f"Reflection: {first['reflection']}"]
    prompt_tail = second["generation"]["feedback_in_prompt"]
    assert first["reflection"] in prompt_tail
    assert all(line in prompt_tail for line in first["signals"])
    assert first["generation"]["feedback_in_prompt"] is None
    best = result.trace[0]["attempts"][result.trace[0]["best_attempt"] - 1]
    assert result.records == ([best["record"]] if best["record"] is not None else [])


CLEAN = ('{"hosts":["SrLaMgTaO6"],"dopants":["Er3+"],'
         '"links":[{"host":"SrLaMgTaO6","dopant":"Er3+"}]}')
INVENTED = '{"hosts":["ZnO"],"dopants":["Er3+"],"links":[{"host":"ZnO","dopant":"Er3+"}]}'


@pytest.mark.parametrize("first, second, best", [
    (INVENTED, CLEAN, 2),  # the retry fixed the invented host
    (INVENTED, '{"hosts": [', 1),  # the retry broke the JSON: the first answer stays
    ('{"hosts":[],"dopants":[],"links":[]}', INVENTED, 1),  # inventions outweigh a gap
])
def test_extractor_reports_the_best_attempt_and_its_record(tiny_model, monkeypatch, first,
                                                           second, best):
    """Scripted answers (random weights cannot answer on cue); reflections are the model's."""
    extractor = Extractor(ExtractorConfig(schema_name="doping", max_attempts=2),
                          loaded=tiny_model)

    def scripted(conversations, with_feedback, sources):
        return [(second if feedback else first, {}) for feedback in with_feedback]

    monkeypatch.setattr(extractor, "_decode", scripted)
    result = extractor.extract(Document.from_text(TEXT))
    trace = result.trace[0]
    assert [a["raw"] for a in trace["attempts"]] == [first, second]
    assert trace["best_attempt"] == best
    expected = json.loads([first, second][best - 1])
    assert result.records == [expected] and result.errors == []


def test_loop_stops_when_the_first_answer_is_clean():
    spec = get_schema("doping")
    grounder = Grounder(Document.from_text(TEXT))
    answer = ('{"hosts":["SrLaMgTaO6"],"dopants":["Er3+"],'
              '"links":[{"host":"SrLaMgTaO6","dopant":"Er3+"}]}')
    calls = []

    def generate(feedback):
        calls.append(list(feedback))
        return answer, {}

    best, attempts = run(spec, TEXT, grounder, generate=generate, max_attempts=3)
    assert len(attempts) == 1 and calls == [[]]
    assert best.record["links"] == [{"host": "SrLaMgTaO6", "dopant": "Er3+"}]


def test_best_attempt_wins_and_all_are_kept():
    spec = get_schema("doping")
    grounder = Grounder(Document.from_text(TEXT))
    answers = iter([
        '{"hosts":["ZnO"],"dopants":["Er3+"],"links":[{"host":"ZnO","dopant":"Er3+"}]}',
        '{"hosts":["SrLaMgTaO6"],"dopants":["Er3+"],"links":[{"host":"SrLaMgTaO6","dopant":"Mn"}]}',
        '{"hosts":["SrLaMgTaO6"],"dopants":["Er3+"],"links":[]}',
    ])
    best, attempts = run(spec, TEXT, grounder, generate=lambda fb: (next(answers), {}),
                         max_attempts=3, reflect=lambda a: "copy names from the text")
    assert [a.number for a in attempts] == [1, 2, 3]
    assert attempts[0].ungrounded == ["hosts[0] = 'ZnO'", "links[0].host = 'ZnO'"]
    assert "links[0].dopant 'Mn' is not listed in dopants" in attempts[1].inconsistent
    assert best is attempts[2]
    assert attempts[1].feedback[-1] == "Reflection: copy names from the text"


def test_invalid_json_is_a_signal_not_a_crash():
    spec = get_schema("doping")
    grounder = Grounder(Document.from_text(TEXT))
    best, attempts = run(spec, TEXT, grounder, generate=lambda fb: ('{"hosts": [', {}),
                         max_attempts=2)
    assert len(attempts) == 2 and best.record is None
    assert "not valid JSON" in attempts[0].errors[0]
    assert isinstance(best, Attempt)


def test_a_material_listed_as_its_own_dopant_is_a_signal():
    spec = get_schema("doping")
    text = "Lithium magnesium phosphate (LMP) was studied."
    grounder = Grounder(Document.from_text(text))
    answers = iter([
        '{"hosts":["LMP"],"dopants":["lmp"],"links":[{"host":"LMP","dopant":"lmp"}]}',
        '{"hosts":["LMP"],"dopants":[],"links":[]}',
    ])
    best, attempts = run(spec, text, grounder, generate=lambda fb: (next(answers), {}),
                         max_attempts=2)
    assert attempts[0].inconsistent == ["'lmp' is listed both as a host and as a dopant"]
    assert "'lmp' is listed both as a host and as a dopant" in attempts[1].feedback
    assert best is attempts[1]


def test_a_round_asks_for_all_its_retries_at_once_and_each_text_keeps_its_own_loop():
    spec = get_schema("doping")
    clean = ('{"hosts":["SrLaMgTaO6"],"dopants":["Er3+"],'
             '"links":[{"host":"SrLaMgTaO6","dopant":"Er3+"}]}')
    invented = '{"hosts":["ZnO"],"dopants":["Er3+"],"links":[{"host":"ZnO","dopant":"Er3+"}]}'
    scripts = {"a": [invented, clean], "b": [clean], "c": [invented, invented]}
    calls: list[list[str]] = []

    def answers(items):
        calls.append([key for key, _ in items])
        return [(scripts[key][1 if feedback else 0], {}) for key, feedback in items]

    grounder = Grounder(Document.from_text(TEXT))
    trials = [Trial(key, grounder) for key in scripts]
    run_many(spec, trials, generate=answers, max_attempts=3,
             reflect=lambda items: [f"fix {key}" for key, _ in items])
    assert calls == [["a", "b", "c"], ["a", "c"], ["c"]]
    assert [len(t.attempts) for t in trials] == [2, 1, 3]
    assert trials[0].attempts[1].feedback[-1] == "Reflection: fix a"
    for trial in trials:  # the same loop as the text alone
        best, alone = run(spec, trial.text, grounder, max_attempts=3,
                          generate=lambda fb, k=trial.text: (scripts[k][1 if fb else 0], {}),
                          reflect=lambda a, k=trial.text: f"fix {k}")
        assert [a.raw for a in alone] == [a.raw for a in trial.attempts]
        assert best.number == trial.best().number
