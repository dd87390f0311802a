"""The probability simplex: projection against references, huge values and layout, uniform random
starts, the ascent step and PGD to the best vertex, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import minimax as mm
from minimax.sets.simplex import project_simplex


def _bisection_projection(v: np.ndarray) -> np.ndarray:
    """Projection onto the simplex by bisection on τ in Σ max(v − τ, 0) = 1 (no sorting)."""
    lo, hi = float(v.min()) - 1.0, float(v.max())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(v - mid, 0).sum() > 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(v - 0.5 * (lo + hi), 0)


vectors = st.integers(1, 12).flatmap(
    lambda k: st.lists(
        st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=k, max_size=k
    )
)

F64 = torch.float64


@given(v=vectors)
def test_simplex_projection_matches_bisection(v):
    z = torch.tensor([v], dtype=F64)
    p = mm.Simplex(len(v)).project(z)[0].numpy()
    ref = _bisection_projection(np.array(v))
    np.testing.assert_allclose(p, ref, atol=1e-9 * max(1.0, np.abs(v).max()), rtol=0)
    assert p.min() >= 0 and abs(p.sum() - 1) <= 1e-12
    again = project_simplex(torch.tensor(p)).numpy()  # idempotent, up to a few ulps
    np.testing.assert_allclose(again, p, atol=8 * np.finfo(np.float64).eps, rtol=0)


def test_simplex_projection_matches_cvxpy_qp():
    cp = pytest.importorskip("cvxpy")
    gen = torch.Generator().manual_seed(0)
    for k in (2, 3, 5):
        v = (3 * torch.randn(4, k, generator=gen, dtype=F64)).numpy()
        ours = mm.Simplex(k).project(torch.tensor(v)).numpy()
        for row, mine in zip(v, ours):
            w = cp.Variable(k)
            cp.Problem(cp.Minimize(cp.sum_squares(w - row)), [w >= 0, cp.sum(w) == 1]).solve()
            np.testing.assert_allclose(mine, w.value, atol=1e-6)


def test_simplex_projection_huge_and_layout():
    s = mm.Simplex(3)
    out = s.project(torch.tensor([[1e308, -1e308, 0.0], [1e200, 1e200, -5.0]], dtype=F64))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0]], dtype=F64))
    lead = torch.randn(4, 2, 3, dtype=F64)
    flat = project_simplex(lead.reshape(8, 3)).reshape(4, 2, 3)
    torch.testing.assert_close(s.project(lead), flat)
    assert s.contains(s.project(lead)).shape == (4, 2)


def test_simplex_random_is_uniform_and_seeded():
    k, n = 4, 4000
    s = mm.Simplex(k)
    draw = s.random((n, k), generator=torch.Generator().manual_seed(1), dtype=F64)
    again = s.random((n, k), generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.equal(draw, again)
    assert bool(s.contains(draw).all())
    # each coordinate of a uniform point of Δ_k is Beta(1, k − 1)
    for j in range(k):
        assert stats.kstest(draw[:, j].numpy(), stats.beta(1, k - 1).cdf).pvalue > 1e-3


def test_simplex_ascent_step_gain_and_pgd_finds_best_vertex():
    s = mm.Simplex(5)
    gen = torch.Generator().manual_seed(2)
    delta = s.random((3, 5), generator=gen, dtype=F64)
    grad = torch.randn(3, 5, generator=gen, dtype=F64)
    step = s.ascent_step(delta, grad, 0.1)
    torch.testing.assert_close(((step - delta) * grad).sum(-1), 0.1 * s.dual_norm(grad))
    torch.testing.assert_close(step.sum(-1), delta.sum(-1))  # stays in the affine hull
    torch.testing.assert_close(s.vertices(dtype=F64), torch.eye(5, dtype=F64))
    for scale in (1e-200, 1e200):  # no underflow or overflow in the norms
        tiny = s.ascent_step(delta, grad * scale, 0.1)
        torch.testing.assert_close(tiny, step)
        torch.testing.assert_close(s.dual_norm(grad * scale) / scale, s.dual_norm(grad))
    w = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.0]], dtype=F64)
    problem = mm.FunctionProblem(
        lambda p, d, b: (d * (w + p["t"])).sum(-1),
        {"t": torch.zeros(5, dtype=F64)},
        s,
        event_shape=(5,),
    )
    cands = mm.PGD(steps=200, step_size=0.05, restarts=2)(
        problem, problem.parameters(), None, generator=torch.Generator().manual_seed(0)
    )
    assert abs(float(cands.best_values()[0]) - 2.0) < 1e-9


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: mm.Simplex(0), ValueError),
        (lambda: mm.Simplex(2.5), TypeError),  # type: ignore[arg-type]
        (lambda: mm.Simplex(3).project(torch.zeros(2, 4)), ValueError),
        (lambda: mm.Simplex(3).project(torch.zeros(2, 3), event_ndim=2), ValueError),
        (lambda: mm.Simplex(3).random((3,)), ValueError),
        (lambda: mm.Simplex(3).ascent_step(torch.zeros(1, 3), torch.zeros(2, 3), 0.1), ValueError),
    ],
)
def test_simplex_bad_input(call, error):
    with pytest.raises(error):
        call()
