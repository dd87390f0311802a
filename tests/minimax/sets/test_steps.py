"""`projected_step`: PGD's update built once per search equals ``project(ascent_step(...))`` bit
for bit (L∞, L2, L1, a box, with and without bounds, float and per-example radii and steps, with
and without restarts in front), refuses mismatched shapes, and leaves a subclass's own methods in
charge."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minimax.sets import Box, L1Ball, L2Ball, LinfBall
from minimax.sets.steps import projected_step


def _composition(S, x, step_size, e):
    return lambda d, g: S.project(S.ascent_step(d, g, step_size, event_ndim=e), x, event_ndim=e)


def _case(seed: int, lead: tuple[int, ...], per_example: bool):
    gen = torch.Generator().manual_seed(seed)
    b = 5
    x = torch.rand(b, 2, 3, generator=gen)
    d = 0.3 * (2 * torch.rand(*lead, b, 2, 3, generator=gen) - 1)
    g = torch.randn(*lead, b, 2, 3, generator=gen)
    g[..., 0, 0] = 0.0  # sign(0) = 0: a coordinate that does not move
    eps = torch.rand(b, generator=gen) * 0.2 + 0.01 if per_example else 0.1
    step = torch.rand(b, generator=gen) * 0.05 if per_example else 0.025
    return x, d, g, eps, step


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([LinfBall, L2Ball, L1Ball]),
    st.integers(0, 2**31 - 1),
    st.sampled_from([(), (1,), (3,)]),
    st.booleans(),
    # (lower, upper): none, both, one side only; x in [0, 1] lies partly outside (0.2, 0.7)
    st.sampled_from([None, (0.0, 1.0), (0.2, 0.7), (0.2, None), (None, 0.7)]),
)
def test_the_built_step_is_the_composition_bit_for_bit(cls, seed, lead, per_example, bounds):
    x, d, g, eps, step = _case(seed, lead, per_example)
    S = cls(eps, lower=bounds[0], upper=bounds[1]) if bounds else cls(eps)
    xs = x if bounds else None
    fast, slow = projected_step(S, xs, step, 2), _composition(S, xs, step, 2)
    for _ in range(3):  # the bounds computed at the first call serve the later ones
        a, b = fast(d, g), slow(d, g)
        assert a.dtype == b.dtype and torch.equal(a, b)
        d = a


def test_other_sets_get_the_composition():
    x = torch.rand(4, 3)
    S = Box(-0.2, 0.2)
    d, g = torch.zeros(4, 3), torch.randn(4, 3)
    assert torch.equal(projected_step(S, x, 0.1, 1)(d, g), _composition(S, x, 0.1, 1)(d, g))


def test_a_subclass_that_overrides_project_keeps_its_own():
    class Halved(LinfBall):
        def project(self, delta, x=None, *, event_ndim=None):
            return 0.5 * super().project(delta, x, event_ndim=event_ndim)

    S = Halved(0.1)
    d, g = torch.zeros(4, 3), torch.ones(4, 3)
    assert torch.allclose(projected_step(S, None, 0.05, 1)(d, g), torch.full((4, 3), 0.025))


def test_a_gradient_of_another_shape_is_refused():
    step = projected_step(LinfBall(0.1), None, 0.01, 1)
    with pytest.raises(ValueError, match="grad shape"):
        step(torch.zeros(4, 3), torch.zeros(4, 2))
