"""The box {lower ≤ δ ≤ upper}: projection, membership, uniform random starts, the sign ascent step,
and bad bounds."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from minimax.sets import Box, LinfBall


def test_box_projection_and_contains():
    S = Box(0.0, 1.0)
    z = torch.tensor([[-0.5], [0.3], [1.7]])
    assert torch.equal(S.project(z), torch.tensor([[0.0], [0.3], [1.0]]))
    assert S.contains(z).tolist() == [False, True, False]
    lo = torch.tensor([0.0, -1.0])
    S2 = Box(lo, torch.tensor([1.0, 0.0]))
    p = S2.project(torch.tensor([[2.0, 2.0], [-2.0, -2.0]]))
    assert torch.equal(p, torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    assert bool(S2.contains(p).all())


def test_random_box_covers_box():
    S = Box(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 3.0]))
    r = S.random((3000, 2), generator=torch.Generator().manual_seed(4))
    assert stats.kstest(r[:, 1].numpy(), "uniform", args=(-1.0, 4.0)).pvalue > 1e-3
    assert bool(S.contains(r).all())


def test_box_ascent_step_is_sign():
    S = Box(0.0, 1.0)
    grad = torch.tensor([[1.0, -2.0, 0.0]])
    new = S.ascent_step(torch.zeros(1, 3), grad, 0.1)
    assert torch.equal(new, torch.tensor([[0.1, -0.1, 0.0]]))
    assert float(S.dual_norm(grad)[0]) == 3.0


def test_bad_bounds_raise():
    with pytest.raises(ValueError, match="lower must be ≤ upper"):
        Box(1.0, 0.0)
    with pytest.raises(ValueError, match="lower must be ≤ upper"):
        Box(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="lower must be ≤ upper"):
        LinfBall(0.1, lower=1.0, upper=0.0)
    with pytest.raises(ValueError, match="NaN"):
        Box(float("nan"), 1.0)
    with pytest.raises(ValueError, match="finite"):
        Box(0.0, float("inf")).random((2, 2))
