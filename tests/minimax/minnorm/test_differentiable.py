"""The differentiable solve (cvxpylayers): the exact weights, and gradients that reach K."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from minimax.minnorm import (
    min_norm_point,
    min_norm_weights,
)
from tests.minimax.minnorm.families import gram_of, rel_gap, vector_sets


@settings(max_examples=6)
@given(G=vector_sets(families=("gaussian", "correlated"), m_min=3, m_max=6, scales=False))
def test_cvxpylayers_matches_exact(G):
    K = gram_of(G)
    res = min_norm_weights(K, "cvxpylayers")
    f_ref = min_norm_weights(K).sq_norm.item()
    assert abs(rel_gap(res.sq_norm.item(), f_ref, K)) <= 1e-6
    assert res.kkt.item() <= 1e-5


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffcp's numpy-2 notice in backward
def test_cvxpylayers_gradient_matches_finite_differences():
    # strictly convex (K ≻ 0) with an interior optimum: all three weights positive
    G = torch.tensor([[1.0, 0.2, 0.1], [-0.5, 0.9, 0.2], [-0.3, -0.8, 0.4]], dtype=torch.float64)
    K0 = gram_of(G)
    assert (min_norm_weights(K0).weights > 0.05).all()
    K = K0.clone().requires_grad_(True)
    res = min_norm_weights(K, "cvxpylayers")
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    (grad,) = torch.autograd.grad(res.weights @ c, K)
    h = 1e-4
    for i, j in [(0, 0), (0, 1), (1, 2), (2, 2)]:
        E = torch.zeros(3, 3, dtype=torch.float64)
        E[i, j] = E[j, i] = 1.0
        wp = min_norm_weights(K0 + h * E, "wolfe").weights
        wm = min_norm_weights(K0 - h * E, "wolfe").weights
        fd = ((wp - wm) @ c / (2 * h)).item()
        assert (grad * E).sum().item() == pytest.approx(fd, rel=1e-3, abs=1e-4)
    # the point is differentiable with respect to the vectors too
    Gv = G.clone().requires_grad_(True)
    d, _ = min_norm_point(Gv, "cvxpylayers")
    (gG,) = torch.autograd.grad(d.sum(), Gv)
    assert torch.isfinite(gG).all() and gG.abs().sum() > 0


def test_cvxpylayers_m2_closed_form_is_differentiable():
    K = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(min_norm_weights(K, "cvxpylayers").weights[0], K)
    # α₁ = (K22 − K12)/(K11 + K22 − 2K12): ∂α₁/∂K22 = (K11 − K12)/den² = 3/16 (K12 enters twice)
    assert g[1, 1].item() == pytest.approx(3 / 16)
    assert g[0, 0].item() == pytest.approx(-1 / 16)
