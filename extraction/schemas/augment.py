"""Schema augmentation for fine-tuning: variants of a schema with the gold transformed to fit.

A model trained on three fixed schemas memorises them; shown many variants of each (a random
subset of the fields, other field names, other descriptions, another field order, flat
parallel lists instead of a list of objects) it has to read the schema it is given. Every
variant is a real ``SchemaSpec`` built from a JSON Schema through the users' own path
(``user.from_json_schema``), so the prompt, the grammar and the validation of a variant are
exactly those a user's schema file of that shape would get; ``Variant.record`` turns a gold
record of the original schema into one of the variant (and checks it validates).

Pure: the randomness comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from extraction.schemas.base import DEFAULT_MAX_ITEMS, SchemaSpec, scalar_leaves
from extraction.schemas.json_model import inline_refs
from extraction.schemas.user import from_json_schema

Record = dict[str, Any]
Transform = Callable[[Any], Any]

# The order changes are applied in (a subset is drawn first, the flat form is made from the
# fields that are left, shuffling comes last so that it shuffles the final fields).
CHANGES = ("subset", "paraphrase", "rename", "flat", "shuffle")

# Other names for the built-in schemas' fields. camelCase of the old or new name is a further
# choice for every field, so fields of users' schemas get renamed too.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "hosts": ("host_materials", "base_materials", "doped_materials"),
    "dopants": ("dopant_species", "dopant_elements", "impurities"),
    "links": ("host_dopant_pairs", "doping_pairs", "pairs"),
    "host": ("host_material", "base_material"),
    "dopant": ("dopant_species", "impurity"),
    "materials": ("compounds", "materials_studied", "substances"),
    "formula": ("chemical_formula", "composition"),
    "name": ("material_name", "common_name"),
    "acronym": ("abbreviation", "short_name"),
    "applications": ("uses", "application_areas", "used_for"),
    "structure_or_phase": ("crystal_structure", "phase", "structure"),
    "description": ("descriptors", "features", "characteristics"),
    "mofs": ("frameworks", "metal_organic_frameworks"),
    "name_of_mof": ("mof_name", "framework_name"),
    "mof_formula": ("framework_formula", "chemical_formula"),
    "mof_description": ("mof_descriptors", "framework_properties"),
    "guest_species": ("guests", "adsorbed_species", "guest_molecules"),
}

# Other wordings of the built-in fields' descriptions (by field name).
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "hosts": ("materials that receive a dopant, copied from the text (e.g. TiO2, GaN)",
              "the doped base compounds, exactly as the text writes them"),
    "dopants": ("elements or ions introduced into a host, as written (e.g. Eu3+, Al, N)",
                "the doping species named in the text, copied exactly"),
    "links": ("pairs of a host and a dopant that the text says go together",
              "for each doped host, which dopant it contains"),
    "host": ("the host of this pair, copied from the host list",
             "which host material is doped"),
    "dopant": ("the dopant of this pair, copied from the dopant list",
               "which dopant is added to that host"),
    "materials": ("one entry per material the text is about",
                  "every compound or material studied in the text"),
    "formula": ("the chemical formula exactly as written (e.g. TiO2); empty when absent",
                "composition as a formula copied from the text, or empty"),
    "name": ("the material's name as written (e.g. titanium dioxide); empty when absent",
             "common name of the material from the text, or empty"),
    "acronym": ("short form the text uses for it (e.g. TNT); empty when absent",
                "abbreviation of the material, or empty"),
    "applications": ("uses the text gives for it (e.g. photocatalysis, anode)",
                     "what it is applied to or studied for"),
    "structure_or_phase": ("crystal structure or phase named (e.g. anatase, wurtzite)",
                           "phase or lattice type, in the text's words"),
    "description": ("other properties or forms mentioned (e.g. nanowires, porous film)",
                    "further descriptors of the material"),
    "mofs": ("one entry per metal-organic framework in the text",
             "every MOF the text studies"),
    "name_of_mof": ("the framework's name as written (e.g. UiO-66); empty when absent",
                    "name of the metal-organic framework, or empty"),
    "mof_formula": ("the framework's formula as written (e.g. Cu3(BTC)2); empty when absent",
                    "chemical formula of the MOF, or empty"),
    "mof_description": ("properties of the framework (e.g. microporous, 2D layered)",
                        "descriptors of the MOF in the text's words"),
    "guest_species": ("molecules or ions taken up by the framework (e.g. CH4, I2)",
                      "adsorbed or loaded guests, copied from the text"),
}

GENERIC_INSTRUCTIONS = (
    "Extract the fields listed below from the text. Copy names and formulas exactly as "
    "written; leave a field empty when the text does not report it.",
    "Fill in the fields below from the text only, copying values as written. Use empty "
    "lists or empty strings for anything the text does not state.",
)


@dataclass(frozen=True)
class Variant:
    """A schema variant: its spec, what was changed, and how gold records change with it."""

    spec: SchemaSpec
    changes: tuple[str, ...]  # of CHANGES, in the order applied
    transform: Transform  # a record of the original schema -> a record of this variant
    schema: dict[str, Any]  # the JSON Schema ``spec`` was built from (a user's file could hold it)

    def record(self, gold: Mapping[str, Any]) -> Record:
        """``gold`` as a record of this variant, in the variant's field order (as the
        pipeline writes records); raises pydantic's ValidationError if it does not fit."""
        value = self.spec.model.model_validate(self.transform(dict(gold)))
        return value.model_dump(mode="json")


def draw_variant(spec: SchemaSpec, rng: random.Random) -> Variant:
    """A random variant: each change with probability one half (at least one applies)."""
    chosen = tuple(change for change in CHANGES if rng.random() < 0.5)
    variant = make_variant(spec, rng, changes=chosen or (rng.choice(CHANGES),))
    return variant if variant.changes else make_variant(spec, rng, changes=("shuffle",))


def make_variant(spec: SchemaSpec, rng: random.Random, *,
                 changes: tuple[str, ...]) -> Variant:
    """The variant with ``changes`` applied (those that apply to this schema: a schema with
    one field has no subset, one without a list of plain objects no flat form)."""
    unknown = set(changes) - set(CHANGES)
    if unknown:
        raise ValueError(f"unknown schema changes {sorted(unknown)}; known: {CHANGES}")
    schema = original_schema(spec)
    transform: Transform = _identity
    applied = []
    for change in CHANGES:
        if change not in changes:
            continue
        step = _STEPS[change](schema, rng)
        if step is None:
            continue
        transform = _then(transform, step)
        applied.append(change)
    reshaped = {"subset", "flat"} & set(applied)
    schema["description"] = rng.choice(GENERIC_INSTRUCTIONS) if reshaped else spec.instructions
    built = from_json_schema(schema, name=f"{spec.name}-variant",
                             where=f"a variant of schema {spec.name!r}")
    return Variant(built, tuple(applied), transform, schema)


def original_schema(spec: SchemaSpec) -> dict[str, Any]:
    """The schema's JSON Schema with references inlined and pydantic's titles left out (the
    prompt never shows them, and renamed fields would keep stale ones)."""
    schema = inline_refs(spec.model.model_json_schema())
    for node in _nodes(schema):
        if isinstance(node.get("title"), str):
            del node["title"]
    return schema


# --- walking a schema -----------------------------------------------------------------------

def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema node below ``node`` (itself first), by structure only: a property named
    "description" or "title" is a node, not a keyword."""
    yield node
    for prop in (node.get("properties") or {}).values():
        if isinstance(prop, dict):
            yield from _nodes(prop)
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"])
    for branch in node.get("anyOf") or []:
        if isinstance(branch, dict):
            yield from _nodes(branch)


def _objects(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (n for n in _nodes(node) if isinstance(n.get("properties"), dict))


def _set_properties(node: dict[str, Any], properties: dict[str, Any]) -> None:
    node["properties"] = properties
    node["required"] = list(properties)


def _entry_level(schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The object whose properties are "the fields": the root, or the items of the root's
    only field when that is a list of objects (general's materials, mof's mofs)."""
    props = schema["properties"]
    if len(props) == 1:
        key, only = next(iter(props.items()))
        items = only.get("items") if only.get("type") == "array" else None
        if isinstance(items, dict) and isinstance(items.get("properties"), dict):
            return items, key
    return schema, None


# --- the changes: each edits the schema in place and returns the record transform ----------

def _subset(schema: dict[str, Any], rng: random.Random) -> Transform | None:
    """Keep a random proper subset of the fields; entries left without a value go."""
    level, root_key = _entry_level(schema)
    keys = list(level["properties"])
    if len(keys) < 2:
        return None
    kept = set(rng.sample(keys, rng.randint(1, len(keys) - 1)))
    _set_properties(level, {k: v for k, v in level["properties"].items() if k in kept})

    def restrict(record: Any) -> Any:
        if root_key is None:
            return {k: v for k, v in record.items() if k in kept}
        entries = [{k: v for k, v in entry.items() if k in kept}
                   for entry in record.get(root_key) or []]
        return {**record, root_key: [e for e in entries if any(scalar_leaves(e))]}

    return restrict


def _paraphrase(schema: dict[str, Any], rng: random.Random) -> Transform | None:
    """Other descriptions for the fields the table knows (at least one changes)."""
    known = [(node, key) for node in _objects(schema) for key in node["properties"]
             if key in PARAPHRASES]
    if not known:
        return None
    chosen = [item for item in known if rng.random() < 0.6] or [rng.choice(known)]
    for node, key in chosen:
        node["properties"][key]["description"] = rng.choice(PARAPHRASES[key])
    return _identity


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _new_name(key: str, rng: random.Random) -> str | None:
    name = rng.choice(SYNONYMS[key]) if key in SYNONYMS else key
    if rng.random() < 0.3 or name == key:
        name = camel_case(name)
    return None if name == key else name


def _rename(schema: dict[str, Any], rng: random.Random) -> Transform | None:
    """Other names for some fields (at least one), at every level; gold keys follow."""
    plan = _rename_plan(schema, rng, share=0.6)
    if not any(_renames(plan)):  # nothing drawn (the schema is unchanged): rename all
        plan = _rename_plan(schema, rng, share=1.0)
    if not any(_renames(plan)):
        return None
    top = {old: new for old, (new, _) in plan[1].items() if new != old}
    for node in _nodes(schema):  # "exactly as listed in hosts" must name the new field
        text = node.get("description")
        if isinstance(text, str):
            for old, new in top.items():
                text = re.sub(rf"\blisted in {re.escape(old)}\b", f"listed in {new}", text)
            node["description"] = text
    return lambda record: _apply_plan(record, plan)


Plan = tuple[str, Any]  # ("object", {old: (new, plan)}) | ("array", plan) | ("leaf", None)


def _rename_plan(node: dict[str, Any], rng: random.Random, *, share: float) -> Plan:
    """Renames ``share`` of the fields of every object below ``node`` (in place) and
    returns what was renamed, in the shape of the schema."""
    if isinstance(node.get("properties"), dict):
        mapping: dict[str, tuple[str, Plan]] = {}
        taken = set(node["properties"])
        for key, prop in node["properties"].items():
            new = _new_name(key, rng) if rng.random() < share else None
            if new is None or new in taken:
                new = key
            taken.add(new)
            mapping[key] = (new, _rename_plan(prop, rng, share=share))
        _set_properties(node, {mapping[key][0]: prop
                               for key, prop in node["properties"].items()})
        return ("object", mapping)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        return ("array", _rename_plan(node["items"], rng, share=share))
    return ("leaf", None)


def _renames(plan: Plan) -> Iterator[bool]:
    kind, inner = plan
    if kind == "object":
        for old, (new, child) in inner.items():
            yield old != new
            yield from _renames(child)
    elif kind == "array":
        yield from _renames(inner)


def _apply_plan(value: Any, plan: Plan) -> Any:
    kind, inner = plan
    if kind == "object" and isinstance(value, dict):
        renamed = {}
        for key, item in value.items():
            new, child = inner.get(key, (key, ("leaf", None)))
            renamed[new] = _apply_plan(item, child)
        return renamed
    if kind == "array" and isinstance(value, list):
        return [_apply_plan(item, inner) for item in value]
    return value


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and len(name) > 3 else name


def _flat(schema: dict[str, Any], rng: random.Random) -> Transform | None:
    """A root list of objects whose fields are all plain strings (doping's links; general's
    materials once only formula/name/acronym are left) becomes parallel lists, one per field:
    item i of each list belongs to entry i. Lossless, and a valid JSON Schema either way."""
    props = schema["properties"]
    candidates = [key for key, prop in props.items() if _plain_entries(prop)]
    if not candidates:
        return None
    key = rng.choice(candidates)
    entry = props[key]
    stem = _singular(key)
    fields = entry["items"]["properties"]
    names = {field: f"{stem}_{field}" for field in fields}
    if set(names.values()) & (set(props) - {key}):
        return None
    replaced: dict[str, Any] = {}
    for name, prop in props.items():
        if name != key:
            replaced[name] = prop
            continue
        for field, item in fields.items():
            item = copy.deepcopy(item)
            about = item.pop("description", None) or field
            replaced[names[field]] = {
                "type": "array", "items": item,
                "maxItems": int(entry.get("maxItems", DEFAULT_MAX_ITEMS)),
                "description": f"{about}; item i of every {stem}_ list belongs to the same "
                               f"{stem}"}
    _set_properties(schema, replaced)

    def flatten(record: Any) -> Any:
        out = {}
        for name, value in record.items():
            if name != key:
                out[name] = value
                continue
            for field in fields:
                out[names[field]] = [entry.get(field) or "" for entry in value or []]
        return out

    return flatten


def _plain_entries(prop: dict[str, Any]) -> bool:
    items = prop.get("items") if prop.get("type") == "array" else None
    return (isinstance(items, dict) and isinstance(items.get("properties"), dict)
            and bool(items["properties"])
            and all(p.get("type") == "string" and "anyOf" not in p
                    for p in items["properties"].values()))


def _shuffle(schema: dict[str, Any], rng: random.Random) -> Transform | None:
    """Another field order at every level with two or more fields (one level at least
    differs); ``Variant.record`` writes gold in the new order."""
    changed = False
    for node in _objects(schema):
        keys = list(node["properties"])
        if len(keys) < 2:
            continue
        order = rng.sample(keys, len(keys))
        if order == keys:
            order = keys[1:] + keys[:1]
        _set_properties(node, {k: node["properties"][k] for k in order})
        changed = True
    return _identity if changed else None


_STEPS: dict[str, Callable[[dict[str, Any], random.Random], Transform | None]] = {
    "subset": _subset, "paraphrase": _paraphrase, "rename": _rename, "flat": _flat,
    "shuffle": _shuffle}


def _identity(record: Any) -> Any:
    return record


def _then(first: Transform, second: Transform) -> Transform:
    return lambda record: second(first(record))
