"""Copy-constrained (extractive) values: every value of an extractive field is a span of the
source that grounding finds, the output stays valid JSON for the schema, the other fields
are left alone; padded and packed batches, fast-forward on and off, closing mode."""

from __future__ import annotations

import json
import random
import re
import time

import pytest
from transformers.convert_slow_tokenizer import bytes_to_unicode

from extraction import prompting
from extraction.checking.grounding import Grounder
from extraction.datasets import nerre
from extraction.decoding import batched, extractive, generation, json_path
from extraction.decoding import token_index as token_index_module
from extraction.errors import GenerationError, SchemaError
from extraction.schemas import get_schema
from extraction.schemas.base import string_leaves
from extraction.schemas.user import from_json_schema_file
from extraction.types import Document
from tests.test_generation import _boosted

# Pieces no NERRE sentence spells this way: unicode dashes, minus, sub/superscripts, quotes
# and a backslash (which a JSON string of our grammar cannot hold), odd whitespace.
ODD_PIECES = ["Y₂O₃", "Er³⁺", "Mn–doped", "10−3", "(Ba,Sr)TiO3", "Mn2+", '"quoted"',
              "back\\slash", "co‐doped", "LiFePO₄", "ZIF-8", "CO2", "Zinc oxide", "σ = 10⁻³"]
SEPARATORS = [" "] * 12 + ["  ", "\n", "\u00a0", ", ", ". "]


def _vocabulary() -> list[str]:
    words = {word.strip(".,;:()") for sentence in nerre.load_doping_sentences("train")
             for word in sentence.text.split()}
    return sorted(w for w in words if w)


def random_documents(count: int, seed: int) -> list[str]:
    """Random word strings from the NERRE doping vocabulary, with odd pieces mixed in."""
    rng = random.Random(seed)
    words = _vocabulary()
    documents = []
    for _ in range(count):
        pieces = [rng.choice(ODD_PIECES) if rng.random() < 0.2 else rng.choice(words)
                  for _ in range(rng.randint(4, 22))]
        text = pieces[0]
        for piece in pieces[1:]:
            text += rng.choice(SEPARATORS) + piece
        documents.append(text + rng.choice(["", "."]))
    return documents


def extractive_values(spec, record) -> list[tuple[str, str]]:
    paths = spec.extractive_paths()
    return [(path, value) for path, value in string_leaves(record)
            if re.sub(r"\[\d+\]", "[]", path) in paths]


def free_values(spec, record) -> list[str]:
    paths = spec.extractive_paths()
    return [value for path, value in string_leaves(record)
            if re.sub(r"\[\d+\]", "[]", path) not in paths]


@pytest.fixture
def copy_states(monkeypatch):
    """Every row's ``CopyState`` of the decodes run while the test holds this fixture."""
    made = []

    class Recorded(extractive.CopyState):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(batched, "CopyState", Recorded)
    return made


def _prompts(loaded, spec, texts):
    return [prompting.render(loaded.tokenizer, prompting.build_messages(spec, text))
            for text in texts]


def assert_copied(spec, texts, outs):
    """Complete, valid for the schema, every extractive value found by grounding."""
    checked = 0
    for text, out in zip(texts, outs):
        assert out.finish_reason == "complete", out.text
        assert out.extractive_relaxed == 0
        record = json.loads(out.text)
        spec.model.model_validate(record)
        grounder = Grounder(Document.from_text(text))
        for path, value in extractive_values(spec, record):
            assert grounder.locate(value), f"{path}={value!r} is not in {text!r}"
            checked += 1
    return checked


# --- decoding with the tiny random models ----------------------------------------------------

@pytest.mark.parametrize("schema, seed", [("doping", 1), ("general", 2), ("mof", 3)])
def test_every_extractive_value_is_a_span_of_its_source(tiny_model, schema, seed,
                                                        copy_states):
    """Random weights write random values: with sources, each one still grounds."""
    spec = get_schema(schema)
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    texts = random_documents(12, seed)
    outs = generation.generate_many(tiny_model, _prompts(tiny_model, spec, texts),
                                    constraint=constraint, max_new_tokens=160,
                                    sources=texts, fast_forward=True)
    assert assert_copied(spec, texts, outs) >= 12  # values were written, not just []
    assert sum(out.forced_tokens for out in outs) > 0
    assert len(copy_states) == len(texts)
    # Fast-forwarded text comes from the grammar (keys, punctuation), never from a value.
    assert all(state.forced_text == 0 for state in copy_states)


@pytest.mark.parametrize("schema", ["doping", "general"])
def test_batches_and_fast_forward_give_the_same_copied_answers(tiny_model, schema):
    """Packed or padded, fast-forward on or off: the same greedy answer, copied."""
    spec = get_schema(schema)
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    texts = random_documents(4, 7)
    prompts = _prompts(tiny_model, spec, texts)
    runs = {(packed, fast): generation.generate_many(
                tiny_model, prompts, constraint=constraint, max_new_tokens=120,
                sources=texts, packed=packed, fast_forward=fast)
            for packed in (True, False) for fast in (True, False)}
    reference = runs[(False, False)]
    for key, outs in runs.items():
        assert [o.token_ids for o in outs] == [o.token_ids for o in reference], key
        assert_copied(spec, texts, outs)
    alone = generation.generate(tiny_model, prompts[1], constraint=constraint,
                                max_new_tokens=120, source=texts[1])
    assert alone.token_ids == reference[1].token_ids


def test_free_fields_stay_free(tiny_model):
    """Applications and descriptors of the general schema are not copied: random weights
    fill them with text that is nowhere in the source."""
    spec = get_schema("general")
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    texts = random_documents(6, 11)
    outs = generation.generate_many(tiny_model, _prompts(tiny_model, spec, texts),
                                    constraint=constraint, max_new_tokens=160, sources=texts)
    assert_copied(spec, texts, outs)
    free = [(text, value) for text, out in zip(texts, outs)
            for value in free_values(spec, json.loads(out.text))]
    assert any(not Grounder(Document.from_text(text)).locate(value) for text, value in free)


def test_a_schema_without_extractive_fields_decodes_as_before(tiny_model, tmp_path):
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"type": "object", "x-extractive": False, "properties": {
        "notes": {"type": "array", "items": {"type": "string", "maxLength": 24}}}}))
    spec = from_json_schema_file(path)
    assert spec.extractive_paths() == {}
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    texts = random_documents(3, 5)
    prompts = _prompts(tiny_model, spec, texts)
    plain = generation.generate_many(tiny_model, prompts, constraint=constraint,
                                     max_new_tokens=60)
    copied = generation.generate_many(tiny_model, prompts, constraint=constraint,
                                      max_new_tokens=60, sources=texts)
    assert [o.token_ids for o in copied] == [o.token_ids for o in plain]


@pytest.mark.parametrize("schema", ["doping", "general"])
def test_closing_mode_ends_a_copied_value_at_a_boundary(tiny_model, schema):
    """The worst case for the reserve (a model spelling byte by byte, opening whatever it
    may, never closing): the answer still ends valid, every copied value grounded."""
    spec = get_schema(schema)
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    texts = random_documents(3, 13)
    spelled = bytes_to_unicode()
    single_bytes = tiny_model.tokenizer.convert_tokens_to_ids(
        [spelled[b] for b in range(256) if chr(b) not in "]}"])
    budget = 2 * (constraint.reserve + extractive.EXTRACTIVE_MARGIN)
    with _boosted(tiny_model.model, single_bytes), \
            _boosted(tiny_model.model, tiny_model.tokenizer.convert_tokens_to_ids(["{"])):
        outs = generation.generate_many(tiny_model, _prompts(tiny_model, spec, texts),
                                        constraint=constraint, max_new_tokens=budget,
                                        sources=texts)
    assert all(len(out.token_ids) <= budget for out in outs)
    assert assert_copied(spec, texts, outs) > 0


@pytest.mark.parametrize("schema", ["doping", "general"])
def test_a_source_with_nothing_to_copy_never_breaks_decoding(tiny_model, schema):
    """Empty or punctuation-only text: valid JSON all the same; a value the schema lets be
    empty is left empty, one that must hold text is written by the grammar alone (counted)."""
    spec = get_schema(schema)
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    texts = ["", '"" -- ;', "Mn-doped ZnO."]
    outs = generation.generate_many(tiny_model, _prompts(tiny_model, spec, texts),
                                    constraint=constraint, max_new_tokens=120, sources=texts)
    for text, out in zip(texts, outs):
        assert out.finish_reason == "complete"
        record = spec.model.model_validate(json.loads(out.text)).model_dump()
        if not out.extractive_relaxed:
            grounder = Grounder(Document.from_text(text))
            assert all(grounder.locate(v) for _, v in extractive_values(spec, record))


def test_sources_need_a_constraint_and_one_text_per_prompt(tiny_model):
    spec = get_schema("doping")
    constraint = generation.JsonConstraint(tiny_model, spec.json_schema())
    with pytest.raises(GenerationError, match="without a JSON constraint"):
        generation.generate_many(tiny_model, ["x"], max_new_tokens=8, sources=["x"])
    with pytest.raises(GenerationError, match="2 sources for 1 prompts"):
        generation.generate_many(tiny_model, ["x"], constraint=constraint,
                                 max_new_tokens=200, sources=["a", "b"])


# --- the pieces, without a model -------------------------------------------------------------

NO_TOKENS = token_index_module.index_vocabulary([])


def copyable(text: str, value: str, *, ignore_case: bool = False, limit: int = 48) -> bool:
    """Whether the constraint lets ``value`` be written and closed for ``text``."""
    source = extractive.CopySource(text, ignore_case=ignore_case, index=NO_TOKENS)
    states = source.advance(source.start_states(), value.encode(), limit)
    return any(source.can_close(s, limit) for s in states)


@pytest.mark.parametrize("text, value, ignore_case, allowed", [
    ("Er3+ doped ZnO", "Er", False, True),  # an exact copy may end before a digit
    ("Er3+ doped ZnO", "Er3+", False, True),
    ("Er³⁺-doped Y₂O₃", "Er3+", False, True),  # superscripts written as digits
    ("Er³⁺-doped Y₂O₃", "Y2O3", False, True),
    ("Er³⁺-doped Y₂O₃", "Y₂O₃", False, True),
    ("Er³⁺-doped Y₂O₃", "Y2", False, False),  # normalised: three characters at least
    ("Mn–doped ZnO", "Mn-doped", False, True),  # en dash written as "-"
    ("Mn–doped ZnO", "Mn–doped ZnO", False, True),
    ("ZnO films", "Zn", False, False),  # not before a letter
    ("ZnO films", "nO", False, False),  # not from inside a word
    ("ZnO films", "ZnO ", False, False),  # no trailing space
    ("ZnO films", " ZnO", False, False),
    ("zinc\n  oxide", "zinc oxide", False, True),  # a whitespace run as one space
    ("Zinc oxide", "zinc oxide", False, False),
    ("Zinc oxide", "zinc oxide", True, True),
    ("Zinc oxide", "ZINC", True, True),
    ('the "smart" film', "smart", False, True),
    ('the "smart" film', '"smart"', False, False),  # no quote inside a JSON value
    ("a -- b", "--", False, False),  # only punctuation
    ("lithium iron phosphate", "lithium iron phosphate", False, True),
    ("lithium iron phosphate", "lithium iron phosphate", False, True),
])
def test_copy_source_spans(text, value, ignore_case, allowed):
    assert copyable(text, value, ignore_case=ignore_case) is allowed
    if allowed:
        assert Grounder(Document.from_text(text)).locate(value)


def test_length_bound_is_kept_and_never_walks_into_a_dead_end():
    text = "Supercalifragilisticexpialidocious ZnO"
    assert copyable(text, "Supercalifragilisticexpialidocious", limit=40)
    assert not copyable(text, "Supercalifragilisticexpialidocious", limit=20)
    source = extractive.CopySource(text, ignore_case=False, index=NO_TOKENS)
    # The long word cannot end within 20 characters: its first letter is no start at all.
    assert source.advance(source.start_states(), b"S", 20) == []
    assert source.advance(source.start_states(), b"Zn", 20)


def _perturbed(rng: random.Random, value: str) -> str:
    choice = rng.random()
    if choice < 0.25:
        return value.lower()
    if choice < 0.4:
        return value.replace("-", "–")
    if choice < 0.55:
        return value.translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
    if choice < 0.7:
        return value[: rng.randint(0, len(value))]
    return value


@pytest.mark.parametrize("ignore_case", [False, True])
def test_whatever_the_walk_closes_grounding_finds(ignore_case):
    """Soundness over many random spans and their variants: a value the constraint lets
    close is always found by grounding. Completeness for plain copies of whole words."""
    rng = random.Random(17)
    closed = 0
    for text in random_documents(30, 21):
        grounder = Grounder(Document.from_text(text))
        source = extractive.CopySource(text, ignore_case=ignore_case, index=NO_TOKENS)
        words = list(re.finditer(r"[^\s\"\\]+(?:[ ][^\s\"\\]+)*", text))
        starts = [i for i, c in enumerate(text)
                  if c.isalnum() and (i == 0 or not text[i - 1].isalnum())]
        for _ in range(40):
            start = rng.choice(starts) if rng.random() < 0.8 else rng.randrange(len(text))
            value = _perturbed(rng, text[start:start + rng.randint(1, 30)])
            if not value:  # closable where the schema allows an empty value
                continue
            states = source.advance(source.start_states(), value.encode(), 48)
            if any(source.can_close(s, 48) for s in states):
                closed += 1
                assert grounder.locate(value), (text, value)
        for match in words:
            word = match.group().split(" ")[0].strip(".,")
            if word and len(word) <= 48 and any(c.isalnum() for c in word) \
                    and not any(ord(c) < 32 for c in word) \
                    and text[match.start():].startswith(word):
                assert copyable(text, word, ignore_case=ignore_case), (text, word)
    assert closed > 100, closed


def test_explore_offers_exactly_the_tokens_that_advance(tiny_model):
    """The walk over the source finds every token a brute-force pass over the vocabulary
    finds, and nothing else (plain tokens, from the start and from inside a value)."""
    constraint = generation.JsonConstraint(tiny_model, get_schema("doping").json_schema())
    index = token_index_module.token_index(constraint._info)
    for text in random_documents(4, 3):
        source = extractive.CopySource(text, ignore_case=False, index=index)
        states = source.start_states()
        for _ in range(4):
            allowed, after, _, _ = source.explore(states, 48)
            brute = {token for data, tokens in index.plain.items()
                     if source.advance(states, data, 48) for token in tokens}
            assert set(allowed) - {t for _, ts in index.quoted.items() for t, _ in ts} == brute
            if not after:
                break
            states = after[sorted(after)[len(after) // 2]]


def test_path_tracker_names_each_value_string():
    text = ('{"hosts":["ZnO","Er3+"],"dopants":[],"links":[{"host":"ZnO","dopant":"Er"}],'
            '"n":1.5,"m":{"a":"x"}}')
    tracker = json_path.PathTracker()
    opened = []
    for byte in text.encode():
        if tracker.step(byte):
            opened.append(json_path.path_of(tracker.frames))
    assert opened == ["hosts[]", "hosts[]", "links[].host", "links[].dopant", "m.a"]
    assert tracker.frames == () and tracker.mode == extractive._AFTER


# --- schemas -----------------------------------------------------------------------------------

@pytest.mark.parametrize("schema, expected", [
    ("doping", {"hosts[]": False, "dopants[]": False, "links[].host": False,
                "links[].dopant": False}),
    ("general", {"materials[].formula": False, "materials[].name": True,
                 "materials[].acronym": False, "materials[].structure_or_phase[]": True}),
    ("mof", {"mofs[].name_of_mof": False, "mofs[].mof_formula": False,
             "mofs[].guest_species[]": False}),
])
def test_builtin_extractive_fields(schema, expected):
    """Path -> ignore_case: names and formulas are copied, free-text descriptions not."""
    fields = get_schema(schema).extractive_paths()
    assert {path: field.ignore_case for path, field in fields.items()} == expected


def test_user_schema_markers_cover_what_is_below_them(tmp_path):
    path = tmp_path / "alloy.json"
    path.write_text(json.dumps({"type": "object", "x-extractive": True, "properties": {
        "name": {"type": "string", "maxLength": 20},
        "notes": {"type": "string", "x-extractive": False},
        "elements": {"type": "array", "items": {"type": "string",
                                                "x-extractive": "ignore-case"}},
        "phases": {"type": "array", "x-extractive": False, "items": {"type": "string"}},
        "best": {"type": "object", "properties": {"label": {"type": "string"},
                                                  "kind": {"enum": ["a", "b"]}}},
        "optional": {"type": "string"}}, "required": ["name"]}))
    fields = from_json_schema_file(path).extractive_paths()
    assert {p: (f.ignore_case, f.max_chars) for p, f in fields.items()} == {
        "name": (False, 20), "elements[]": (True, 64), "best.label": (False, 64),
        "optional": (False, 64)}


def test_a_bad_marker_is_a_schema_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"type": "object", "properties": {
        "name": {"type": "string", "x-extractive": "yes"}}}))
    with pytest.raises(SchemaError, match="x-extractive must be"):
        from_json_schema_file(path)


# --- the real tokenizer ----------------------------------------------------------------------

@pytest.mark.slow
def test_the_smollm2_vocabulary_is_indexed_quickly(default_model_dir):
    import xgrammar as xgr
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    info = xgr.TokenizerInfo.from_huggingface(tokenizer)
    started = time.perf_counter()
    index = token_index_module.token_index(info)
    assert time.perf_counter() - started < 5.0
    assert len(index.plain) > 40_000 and len(index.tailed) < 1_000
    text = " ".join(random_documents(40, 9))  # a long unit: a few thousand characters
    started = time.perf_counter()
    source = extractive.CopySource(text, ignore_case=False, index=index)
    allowed, after, _ = source.first(48)
    assert time.perf_counter() - started < 1.0
    assert len(allowed) > 100
    states = after[b"Y"] if b"Y" in after else next(iter(after.values()))
    started = time.perf_counter()
    source.explore(states, 48)
    assert time.perf_counter() - started < 0.01
