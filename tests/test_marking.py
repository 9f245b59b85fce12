"""Evidence spans cut into flat pieces (app.marking): the sweep gives, for every piece, the
same covering marks as checking every mark against every piece."""

from __future__ import annotations

import random

import pytest

from app.marking import Mark, pieces
from extraction.types import FieldPath


@pytest.mark.parametrize("seed", range(40))
def test_pieces_match_a_brute_force_cut(seed: int):
    rnd = random.Random(seed)
    length = rnd.randint(0, 80)
    marks = [Mark(start, start + rnd.randint(0, 15), FieldPath(0, f"hosts[{i}]"), "v")
             for i in range(rnd.randint(0, 12)) for start in [rnd.randint(0, length + 3)]]
    cuts = {rnd.randint(1, max(1, length))} if length else set()
    edges = sorted({0, length, *cuts, *(m.start for m in marks if m.start < length),
                    *(min(m.end, length) for m in marks)})
    expected = [(a, b, tuple(m for m in marks if m.start <= a and m.end >= b))
                for a, b in zip(edges, edges[1:])]
    assert [(p.start, p.end, p.marks) for p in pieces(length, marks, cuts=cuts)] == expected
