"""Schema variants for fine-tuning: every variant is a real schema (built through the users'
JSON Schema path) whose model validates the transformed gold, each change is what it claims,
and the same seed gives the same variant."""

from __future__ import annotations

import json
import random
from collections import Counter
from functools import cache

import pytest

from extraction import prompting
from extraction.datasets.splits import training_split
from extraction.schemas import get_schema
from extraction.schemas.augment import CHANGES, draw_variant, make_variant, original_schema
from extraction.schemas.base import scalar_leaves
from extraction.schemas.bounds import learn_bounds, widened

TASKS = {"doping": "doping", "general": "general:0", "mof": "mof:0"}
GOLDS_PER_SCHEMA = 40


@cache
def _training(schema: str):
    """The schema widened as fine-tuning widens it, and some of its training gold."""
    _, positives, negatives = training_split(TASKS[schema])
    items = positives + negatives[:5]
    spec = widened(get_schema(schema), learn_bounds(get_schema(schema), [a.gold for a in items]))
    return spec, [a.gold for a in items[:GOLDS_PER_SCHEMA]] + [a.gold for a in negatives[:2]]


def _values(record) -> Counter:
    return Counter(value.strip() for _, value in scalar_leaves(record) if value.strip())


def _fields(spec) -> list[str]:
    return list(spec.field_descriptions())


@pytest.mark.parametrize("schema", list(TASKS))
@pytest.mark.parametrize("changes", [(c,) for c in CHANGES] + [CHANGES, "drawn"])
def test_every_variant_validates_its_transformed_gold(schema, changes):
    spec, golds = _training(schema)
    for number, gold in enumerate(golds):
        rng = random.Random(f"{schema}:{number}")
        variant = (draw_variant(spec, rng) if changes == "drawn"
                   else make_variant(spec, rng, changes=changes))
        if not variant.changes:  # general's and mof's entries hold lists: no flat form
            assert changes == ("flat",) and schema != "doping"
            continue
        assert set(variant.changes) <= set(CHANGES)
        record = variant.record(gold)
        assert variant.spec.accepts(record), (variant.changes, record)
        assert variant.spec.json_schema()  # the grammar's schema builds
        if "subset" not in variant.changes:  # every value is still there
            assert _values(record) == _values(gold), variant.changes


@pytest.mark.parametrize("schema", list(TASKS))
def test_a_renamed_variant_has_other_names_and_the_same_values(schema):
    spec, golds = _training(schema)
    for number, gold in enumerate(golds[:10]):
        variant = make_variant(spec, random.Random(number), changes=("rename",))
        assert variant.changes == ("rename",)
        assert set(_fields(variant.spec)) != set(_fields(spec))
        assert len(_fields(variant.spec)) == len(_fields(spec))
        record = variant.record(gold)
        assert _values(record) == _values(gold)
        paths = {path for path, _ in scalar_leaves(record)}
        assert not paths or paths != {path for path, _ in scalar_leaves(gold)} or \
            record.keys() != gold.keys()


def test_renamed_doping_links_still_name_the_renamed_lists():
    spec, _ = _training("doping")
    for seed in range(20):
        variant = make_variant(spec, random.Random(seed), changes=("rename",))
        for text in variant.spec.field_descriptions().values():
            if "listed in" in text:
                assert text.rsplit("listed in ", 1)[1] in variant.schema["properties"], text


@pytest.mark.parametrize("schema", list(TASKS))
def test_a_subset_variant_keeps_some_fields_and_their_values_only(schema):
    spec, golds = _training(schema)
    for number, gold in enumerate(golds):
        variant = make_variant(spec, random.Random(number), changes=("subset",))
        kept = set(_fields(variant.spec))
        assert variant.changes == ("subset",) and kept < set(_fields(spec))
        record = variant.record(gold)
        assert not _values(record) - _values(gold)  # nothing new appears
        entries = record if schema == "doping" else next(iter(record.values()))
        if schema != "doping":  # an entry without a value left is dropped
            assert all(any(scalar_leaves(entry)) for entry in entries)


def test_a_flat_doping_variant_holds_the_links_as_parallel_lists():
    spec, golds = _training("doping")
    linked = [g for g in golds if g["links"]]
    assert linked
    for number, gold in enumerate(linked):
        variant = make_variant(spec, random.Random(number), changes=("flat",))
        assert variant.changes == ("flat",)
        properties = variant.schema["properties"]
        assert "links" not in properties and {"link_host", "link_dopant"} <= set(properties)
        assert all(prop["type"] == "array" and prop["items"]["type"] == "string"
                   for prop in properties.values())
        record = variant.record(gold)
        assert list(zip(record["link_host"], record["link_dopant"])) == \
            [(link["host"], link["dopant"]) for link in gold["links"]]
        assert record["hosts"] == gold["hosts"] and record["dopants"] == gold["dopants"]
        # the grammar still copies hosts and dopants of links from the text
        assert {"link_host[]", "link_dopant[]"} <= set(variant.spec.extractive_paths())


def test_a_general_variant_is_flat_only_when_its_entries_hold_plain_strings():
    spec, golds = _training("general")
    assert make_variant(spec, random.Random(0), changes=("flat",)).changes == ()
    flats = [make_variant(spec, random.Random(seed), changes=("subset", "flat"))
             for seed in range(60)]
    flat = [v for v in flats if "flat" in v.changes]
    assert flat, "some subset leaves only formula/name/acronym"
    for variant in flat:
        assert all(name.startswith("material_") for name in variant.schema["properties"])
        for gold in golds:
            variant.record(gold)


@pytest.mark.parametrize("schema", list(TASKS))
def test_shuffled_and_paraphrased_variants_change_order_or_wording_only(schema):
    spec, golds = _training(schema)
    shuffled = make_variant(spec, random.Random(1), changes=("shuffle",))
    assert shuffled.changes == ("shuffle",)
    assert sorted(_fields(shuffled.spec)) == sorted(_fields(spec))
    assert _fields(shuffled.spec) != _fields(spec)
    reworded = make_variant(spec, random.Random(1), changes=("paraphrase",))
    assert _fields(reworded.spec) == _fields(spec)
    assert reworded.spec.field_descriptions() != spec.field_descriptions()
    for gold in golds:
        written = spec.model.model_validate(gold).model_dump(mode="json")  # values stripped
        assert shuffled.record(gold) == written == reworded.record(gold)  # dict equality
    if schema == "doping":  # the record is written in the variant's order
        assert list(shuffled.record(golds[0])) == list(shuffled.schema["properties"]) \
            != list(golds[0])


@pytest.mark.parametrize("schema", list(TASKS))
def test_the_same_seed_gives_the_same_variant(schema):
    spec, golds = _training(schema)
    prompts = set()
    for seed in range(8):
        one = draw_variant(spec, random.Random(f"s{seed}"))
        two = draw_variant(spec, random.Random(f"s{seed}"))
        assert one.schema == two.schema and one.changes == two.changes
        assert one.record(golds[0]) == two.record(golds[0])
        assert prompting.system_message(one.spec) == prompting.system_message(two.spec)
        prompts.add(prompting.system_message(one.spec))
    assert len(prompts) > 4  # and other seeds give other variants


def test_a_variant_in_a_file_is_the_same_schema_a_user_would_give(tmp_path):
    spec, golds = _training("doping")
    variant = make_variant(spec, random.Random(3), changes=CHANGES)
    path = tmp_path / f"{variant.spec.name}.json"
    path.write_text(json.dumps(variant.schema))
    from_file = get_schema(str(path))
    assert from_file.field_descriptions() == variant.spec.field_descriptions()
    assert from_file.json_schema() == variant.spec.json_schema()
    assert original_schema(spec)["properties"].keys() == {"hosts", "dopants", "links"}
