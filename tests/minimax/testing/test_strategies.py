"""The strategies of minimax.testing: the Gram families are what they say, and a seeded draw gives
identical tensors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from minimax.testing import (
    GRAM_FAMILIES,
    gram_case,
    gram_matrices,
    known_problems,
)


def test_gram_families_are_what_they_say():
    corr = gram_case("correlated", m=6, n=50, seed=1).vectors
    unit = corr / corr.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    assert 0.97 < float(cos[~torch.eye(6, dtype=torch.bool)].mean()) < 0.999
    rd = gram_case("rank_deficient", m=6, n=2)
    assert int(torch.linalg.matrix_rank(rd.gram)) == 2
    pm = gram_case("origin_in_hull", m=5, n=3)
    assert torch.equal(pm.vectors[:2], -pm.vectors[2:4])
    assert gram_case("gaussian", 3, 2, scale=1e12).gram.abs().max() > 1e10
    expected = "gram_case('gaussian', m=3, n=2, seed=7, scale=1)"
    assert repr(gram_case("gaussian", 3, 2, seed=7)) == expected
    with pytest.raises(ValueError, match="n < m"):
        gram_case("rank_deficient", m=2, n=2)
    assert set(GRAM_FAMILIES) == {"gaussian", "correlated", "rank_deficient", "origin_in_hull"}


def _draw_twice(strategy: st.SearchStrategy, key) -> tuple[list, list]:
    def run() -> list:
        out: list = []

        @seed(20240611)
        @settings(max_examples=8, database=None, phases=["generate"])
        @given(strategy)
        def collect(x):
            out.append(key(x))

        collect()
        return out

    return run(), run()


def test_same_draw_gives_identical_tensors():
    first, second = _draw_twice(known_problems(), lambda kp: kp.fingerprint())
    assert first == second and len(first) == 8
    g1, g2 = _draw_twice(gram_matrices(), lambda c: (c.family, c.seed, c.vectors.tolist()))
    assert g1 == g2
    a, b = gram_case("correlated", 5, 3, seed=42), gram_case("correlated", 5, 3, seed=42)
    assert torch.equal(a.vectors, b.vectors)
