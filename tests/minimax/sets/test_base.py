"""What every perturbation set shares: seeded random starts inside the set, per-example step sizes,
and a clean input x outside the bounds."""

from __future__ import annotations

import pytest
import torch

from minimax.sets import Box, L1Ball, L2Ball, LinfBall, PerturbationSet, Simplex

ALL_SETS: list[PerturbationSet] = [
    LinfBall(0.3),
    L2Ball(0.7),
    L1Ball(1.5),
    Box(-0.2, torch.tensor([0.5, 1.0, 2.0])),
]


@pytest.mark.parametrize("S", ALL_SETS, ids=repr)
def test_random_in_set_and_reproducible(S):
    shape = (4, 6, 3)
    a = S.random(shape, generator=torch.Generator().manual_seed(7))
    b = S.random(shape, generator=torch.Generator().manual_seed(7))
    c = S.random(shape, generator=torch.Generator().manual_seed(8))
    assert a.shape == shape and a.dtype == torch.float32
    assert bool(S.contains(a).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    d = S.random(shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert d.dtype == torch.float64


@pytest.mark.parametrize("S", ALL_SETS, ids=repr)
def test_ascent_step_per_example_step_size(S):
    g = torch.Generator().manual_seed(5)
    delta = torch.randn(2, 4, 3, generator=g)
    grad = torch.randn(2, 4, 3, generator=g)
    steps = torch.tensor([0.0, 0.1, 0.2, 0.4])
    out = S.ascent_step(delta, grad, steps, event_ndim=1)
    for b in range(4):
        ref = S.ascent_step(delta[:, b], grad[:, b], float(steps[b]), event_ndim=1)
        torch.testing.assert_close(out[:, b], ref)
    assert torch.equal(out[:, 0], delta[:, 0])


@pytest.mark.parametrize(
    "S",
    [
        LinfBall(0.1, lower=0.0, upper=1.0),
        L2Ball(0.1, lower=0.0, upper=1.0),
        L1Ball(0.1, lower=0.0, upper=1.0),
        LinfBall(0.1, lower=0.0),
        L2Ball(0.1, upper=1.0),
        Box(-0.1, 0.1),
        Simplex(4),
    ],
    ids=repr,
)
def test_project_with_x_outside_the_bounds_stays_in_the_set(S):
    """Issue 21: with x outside [lower, upper], clamping to lower − x gave |δ| far above ε. Every
    set: x is clipped into the bounds first, so δ stays in the set, and x + δ is never further
    outside the bounds than x (the policy of docs/reliability.md)."""
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[-3.0, 255.0, 0.5, 1.0 + 1e-3]], dtype=torch.float64)
    delta = torch.randn(2, 1, 4, generator=g, dtype=torch.float64)
    out = S.project(delta, x)
    assert bool(S.contains(out, x.clamp(0.0, 1.0)).all())
    if not isinstance(S, (Box, Simplex)):
        assert float(S.norm(out).max()) <= 0.1 * (1 + 1e-12)
        lo = x.clamp(max=0.0) if S.lower is not None else -torch.inf
        hi = x.clamp(min=1.0) if S.upper is not None else torch.inf
        assert bool(((x + out >= lo - 1e-12) & (x + out <= hi + 1e-12)).all())
