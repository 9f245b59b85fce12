"""Our own *normalised* scorer, reported beside the paper's strict one and always labelled so.

The strict scorer compares words by exact equality, so "Ca 3 Co 4 O 9" vs "Ca3Co4O9", a
unicode minus or a subscript digit all count as errors. This scorer compares whole entities
(not words) after normalisation: unicode NFKC (sub/superscript digits become ASCII), dashes and
minus signs become "-", trailing punctuation goes, chemical formulas keep their case ("Co" is
cobalt, "CO" carbon monoxide) and lose inner whitespace, everything else is case-folded with
whitespace collapsed. Per example, each field becomes a set of normalised strings; counts are
summed over examples (micro average). Pure functions: nothing here reads files.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from extraction.datasets.conversion import ENTRY_LAYOUT
from extraction.schemas.base import string_leaves, without_positions

DOPING_FIELDS = ("hosts", "dopants")
DOPING_LINK = "host-dopant"

_ELEMENTS = frozenset("""
H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy
Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf
Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og D""".split())
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
# Element symbols, counts and the punctuation formulas use; x/y/z/δ are variable counts.
_FORMULA_TOKEN = re.compile(r"(?:[A-Z][a-z]?|[0-9.,+\-()\[\]{}:/·•=xyzδ])+")
_SYMBOL = re.compile(r"[A-Z][a-z]?")
_COUNT_TOKEN = re.compile(r"[0-9.+\-xyzδ]+")
_TRAILING = ".,;:!?"


def is_formula(token: str) -> bool:
    """A token made only of valid element symbols, counts and formula punctuation.

    "ZnO", "Co", "CO", "Er3+", "NaYF4:Er3+" are formulas; "ZIF-8" (no element Z), "doped",
    "MOF" are not.
    """
    if not _FORMULA_TOKEN.fullmatch(token):
        return False
    symbols = _SYMBOL.findall(token)
    return bool(symbols) and all(symbol in _ELEMENTS for symbol in symbols)


def _is_count(token: str) -> bool:
    return bool(_COUNT_TOKEN.fullmatch(token)) and any(c.isdigit() or c in "+-" for c in token)


def normalise(value: str) -> str:
    """The comparable form of one entity string ("" when nothing is left)."""
    text = unicodedata.normalize("NFKC", value).translate(_DASHES).strip()
    text = text.rstrip(_TRAILING + " \t\n").strip()
    words: list[str] = []
    chain = after_count = False  # last word is a formula a count may continue; last token a count
    for token in text.split():
        formula, count = is_formula(token), _is_count(token)
        # "Ca 3 Co 4 O 9" and "Er 3+": counts glue to the formula around them ("ZnO TiO2" not).
        if chain and (count or (formula and after_count)):
            words[-1] += token
            after_count = count
            continue
        words.append(token if formula else token.casefold())
        chain, after_count = formula, False
    return " ".join(words)


@dataclass(frozen=True)
class View:
    """One record reduced to sets of normalised strings: per field, and per link type."""

    fields: dict[str, frozenset[str]]
    links: dict[str, frozenset[str]]


def _norm_set(values: Sequence[Any]) -> frozenset[str]:
    return frozenset(n for v in values if isinstance(v, str) and (n := normalise(v)))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def view(record: Mapping[str, Any] | None, schema: str) -> View:
    """The normalised view of a record of the built-in ``schema``, or of any other schema.

    For a schema that is not built in, every string leaf counts, grouped by its path with
    list positions removed (``items[2].name`` -> ``items.name``); there are no links.
    """
    record = record or {}
    if schema == "doping":
        pairs = [(normalise(str(link.get("host", ""))), normalise(str(link.get("dopant", ""))))
                 for link in _as_list(record.get("links", [])) if isinstance(link, dict)]
        return View(fields={f: _norm_set(_as_list(record.get(f, []))) for f in DOPING_FIELDS},
                    links={DOPING_LINK: frozenset(f"{h}|{d}" for h, d in pairs if h and d)})
    if schema in ENTRY_LAYOUT:
        container, root, fields = ENTRY_LAYOUT[schema]
        entries = [e for e in _as_list(record.get(container, [])) if isinstance(e, dict)]
        values = {f: _norm_set([v for e in entries for v in _as_list(e.get(f, ""))])
                  for f in fields}
        linked = [f for f in fields if f != root]
        links: dict[str, set[str]] = {f"{root}-{f}": set() for f in linked}
        for entry in entries:
            key = _as_list(entry.get(root, ""))
            key_text = normalise(key[0]) if key and isinstance(key[0], str) else ""
            if not key_text:
                continue  # an entry without a root links nothing, as in the strict scorer
            for f in linked:
                links[f"{root}-{f}"] |= {f"{key_text}|{v}"
                                         for v in _norm_set(_as_list(entry.get(f, "")))}
        return View(fields=values, links={k: frozenset(v) for k, v in links.items()})
    grouped: dict[str, set[str]] = {}
    for path, value in string_leaves(dict(record)):
        if normalised := normalise(value):
            grouped.setdefault(without_positions(path), set()).add(normalised)
    return View(fields={k: frozenset(v) for k, v in grouped.items()}, links={})


Counts = list[int]  # [tp, fp, fn]


def _counts(gold: frozenset[str], predicted: frozenset[str]) -> Counts:
    return [len(gold & predicted), len(predicted - gold), len(gold - predicted)]


def score_example(gold: Mapping[str, Any] | None, predicted: Mapping[str, Any] | None,
                  schema: str) -> dict[str, Any]:
    """Normalised per-example counts: {"fields": {name: [tp, fp, fn]}, "links": {...},
    "exact": 0|1}. ``predicted`` None (no valid answer) scores as an empty record."""
    g, p = view(gold, schema), view(predicted, schema)
    names = list(dict.fromkeys([*g.fields, *p.fields]))
    empty: frozenset[str] = frozenset()
    fields = {n: _counts(g.fields.get(n, empty), p.fields.get(n, empty)) for n in names}
    links = {n: _counts(g.links[n], p.links.get(n, empty)) for n in g.links}
    exact = all(c[1] == c[2] == 0 for c in [*fields.values(), *links.values()])
    return {"fields": fields, "links": links, "exact": int(exact)}
