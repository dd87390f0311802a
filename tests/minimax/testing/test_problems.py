"""The known problems of minimax.testing: the oracles are exact maxima, the paper's numbers, reprs
that rebuild the problem, validated arguments."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minimax as mm
from minimax.testing import (
    FAMILIES,
    KnownProblem,
    bilinear,
    counterexample,
    known_problems,
    linear_model,
    make_problem,
    max_of_pieces,
    multilinear_box,
    tanh_network,
)
from tests.minimax.testing.examples import FAST


@pytest.mark.parametrize("family", FAMILIES)
@FAST
@given(data=st.data())
def test_oracles_are_exact_maxima(family, data):
    """R from the oracle equals g at the maximizers and bounds g at random points of S."""
    kp = data.draw(known_problems(families=(family,)), label="kp")
    cands = kp.candidates(mode="padded")
    per_example = kp.per_example_loss()
    assert torch.allclose(cands.values.max(0).values.double(), per_example, atol=1e-9, rtol=1e-9)
    assert torch.allclose(cands.values.min(0).values.double(), per_example, atol=1e-8, rtol=1e-8)
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    shape = kp.problem.delta_shape(kp.batch)
    pts = kp.problem.perturbation.random(
        (256, *shape), generator=gen, dtype=torch.float64, event_ndim=len(shape) - 1
    )
    with torch.no_grad():
        vals = mm.extend.engine_of(kp.problem).values(kp.params, pts, kp.batch)
    assert bool((vals <= per_example + 1e-9 * per_example.abs().clamp_min(1)).all())
    assert kp.problem.perturbation.contains(cands.deltas, event_ndim=len(shape) - 1).all()


def test_named_problems_match_the_paper():
    kp = counterexample(x=(1.0, 0.0))
    assert float(kp.robust_loss()) == 2.0
    assert kp.maximizers()[0].flatten().tolist() == [0.0, 1.0]
    moved = {"x": torch.tensor([1.0 - 0.1 * 2, 0.0], dtype=torch.float64)}
    assert float(kp.robust_loss(moved)) == pytest.approx((1 - 0.2) ** 2 + 1)
    assert float(bilinear(0.5).robust_loss()) == 0.5
    assert repr(make_problem("max_of_pieces")).startswith("max_of_pieces(a=")
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("nope")


def test_repr_rebuilds_the_problem():
    for name in (
        "counterexample",
        "bilinear",
        "max_of_pieces",
        "multilinear_box",
        "linear_model",
        "tanh_network",
    ):
        kp = make_problem(name)
        rebuilt = eval(repr(kp), vars(__import__("minimax.testing", fromlist=["*"])))
        assert isinstance(rebuilt, KnownProblem)
        assert rebuilt.fingerprint() == kp.fingerprint()
        assert torch.equal(rebuilt.robust_loss(), kp.robust_loss())


def test_family_arguments_are_validated():
    with pytest.raises(ValueError, match="gaps"):
        max_of_pieces(gaps=[[-1.0, 0.0]])
    with pytest.raises(ValueError, match="2\\^k"):
        multilinear_box(w=[[[0.0]] * 3], v=[[0.0] * 3])
    with pytest.raises(ValueError, match="finite set"):
        linear_model(w=[0.0, 0.0], norm="2")
    with pytest.raises(ValueError, match="d ∈"):
        tanh_network(W=[[1.0, 1.0, 1.0]], c=[0.0], v=[1.0], x=[[0.0, 0.0, 0.0]])
