"""The norm balls (L∞, L2, L1): projections (exactness, idempotence, optimality), uniform random
starts, ascent-step geometry, the [*lead, B, *event] layout, x-bounds, input validation, reprs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from minimax.sets import Box, L1Ball, L2Ball, LinfBall

BALLS = [LinfBall, L2Ball, L1Ball]
ORD = {LinfBall: np.inf, L2Ball: 2, L1Ball: 1}
DUAL_ORD = {LinfBall: 1, L2Ball: 2, L1Ball: np.inf}


def _np_norm(v: np.ndarray, ord_: float) -> float:
    return float(np.linalg.norm(v.ravel(), ord=ord_))


def _l1_reference(v: np.ndarray, eps: float) -> np.ndarray:
    """Projection onto the L1 ball by bisection on the soft threshold (float64, no sorting)."""
    if np.abs(v).sum() <= eps:
        return v.copy()
    lo, hi = 0.0, float(np.abs(v).max())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(np.abs(v) - mid, 0).sum() > eps:
            lo = mid
        else:
            hi = mid
    return np.sign(v) * np.maximum(np.abs(v) - hi, 0)


vectors = st.integers(1, 12).flatmap(
    lambda d: st.lists(
        st.floats(-10, 10, allow_nan=False, allow_subnormal=False), min_size=d, max_size=d
    )
)
radii = st.floats(0.0, 5.0, allow_nan=False, allow_subnormal=False)
seeds = st.integers(0, 2**31 - 1)


# ------------------------------------------------------------------------------------------------
# projection
# ------------------------------------------------------------------------------------------------


@given(v=vectors, eps=radii)
def test_l1_projection_matches_bisection_reference(v, eps):
    z = torch.tensor([v], dtype=torch.float64)
    p = L1Ball(eps).project(z)[0].numpy()
    ref = _l1_reference(np.array(v), eps)
    np.testing.assert_allclose(p, ref, atol=1e-9, rtol=0)
    assert np.abs(p).sum() <= eps + 1e-9


@pytest.mark.parametrize("cls", [L1Ball, L2Ball])
@pytest.mark.parametrize("seed", range(4))
def test_projection_matches_cvxpy(cls, seed):
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 9))
    z = rng.normal(size=d) * 3
    eps = float(rng.uniform(0.1, 2.0))
    w = cp.Variable(d)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(w - z)), [cp.norm(w, ORD[cls]) <= eps])
    tol = 1e-10
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, tol_ktratio=tol)
    p = cls(eps).project(torch.tensor(z[None]))[0].numpy()
    np.testing.assert_allclose(p, w.value, atol=1e-6)
    # ours is feasible and no farther from z than the solver's answer
    assert _np_norm(p, ORD[cls]) <= eps * (1 + 1e-12)
    assert np.sum((p - z) ** 2) <= prob.value + 1e-9


@pytest.mark.parametrize("cls", BALLS)
@given(v=vectors, eps=radii, seed=seeds)
def test_ball_projection_properties(cls, v, eps, seed):
    S = cls(eps)
    z = torch.tensor([v], dtype=torch.float64)
    p = S.project(z)
    assert p.shape == z.shape and p.dtype == z.dtype
    assert bool(S.contains(p, atol=1e-9).all())
    # idempotent
    torch.testing.assert_close(S.project(p), p, atol=1e-12, rtol=1e-12)
    # optimal: variational inequality <z - P z, y - P z> <= 0 for feasible y
    g = torch.Generator().manual_seed(seed)
    ys = S.random((64, len(v)), generator=g, dtype=torch.float64)
    vi = ((z - p) * (ys - p)).sum(-1)
    assert float(vi.max()) <= 1e-9 * (1 + float(z.abs().sum()))
    # points inside are unchanged (bit for bit)
    torch.testing.assert_close(S.project(ys), ys, atol=0, rtol=0)


@pytest.mark.parametrize("cls", BALLS)
def test_eps_zero_projects_to_zero(cls):
    z = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cls(0.0).project(z), torch.zeros_like(z))
    assert torch.equal(cls(0.0).project(torch.zeros(2, 3)), torch.zeros(2, 3))


def test_linf_projection_with_bounds_is_exact():
    """L∞ ∩ x-box: the clamp is the exact projection (variational inequality)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 4, 4, generator=g, dtype=torch.float64)
    S = LinfBall(0.1, lower=0.0, upper=1.0)
    z = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    p = S.project(z, x)
    assert bool(S.contains(p, x).all())
    ys = S.random((32, 6, 3, 4, 4), generator=g, x=x, event_ndim=3)
    assert bool(S.contains(ys, x, event_ndim=3).all())
    vi = ((z - p) * (ys - p)).flatten(2).sum(-1)
    assert float(vi.max()) <= 1e-12
    # clamp into [max(-eps, -x), min(eps, 1 - x)]
    torch.testing.assert_close(
        p, torch.clamp(z, torch.clamp(-x, min=-0.1), torch.clamp(1 - x, max=0.1))
    )


@pytest.mark.parametrize("cls", BALLS)
def test_image_bounds_respected(cls):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, 8, 8, generator=g)
    assert bool(((x >= 0) & (x <= 1)).all())  # the composition's feasibility needs a valid x
    S = cls(2.0, lower=0.0, upper=1.0)
    z = 3 * torch.randn(4, 3, 8, 8, generator=g)
    p = S.project(z, x)
    assert bool(((x + p >= -1e-6) & (x + p <= 1 + 1e-6)).all())
    assert bool((S.norm(p) <= 2.0 * (1 + 1e-5)).all())  # still in the ball
    assert bool(S.contains(p, x).all())
    r = S.random((5, 4, 3, 8, 8), generator=g, x=x, event_ndim=3)
    assert bool(((x + r >= -1e-6) & (x + r <= 1 + 1e-6)).all())
    assert bool(S.contains(r, x, event_ndim=3).all())
    # contains sees a bounds violation
    bad = torch.zeros_like(x)
    bad[0, 0, 0, 0] = 1.5
    assert S.contains(bad, x).tolist() == [False, True, True, True]


def test_projection_is_pure_and_differentiable():
    for S in (LinfBall(0.5), L2Ball(0.5), L1Ball(0.5)):
        z = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
        before = z.detach().clone()
        out = S.project(z)
        assert torch.equal(z.detach(), before)
        (grad,) = torch.autograd.grad(out.sum(), z)
        assert torch.isfinite(grad).all()


# ------------------------------------------------------------------------------------------------
# random starts
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", BALLS)
@pytest.mark.parametrize("d", [1, 2, 5])
def test_random_is_uniform_in_ball(cls, d):
    """Uniform in a d-dim norm ball ⇔ (‖δ‖/eps)^d ~ U(0,1) with a symmetric direction."""
    eps = 0.8
    S = cls(eps)
    r = S.random((4000, d), generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    radius = (S.norm(r) / eps).numpy() ** d
    assert stats.kstest(radius, "uniform").pvalue > 1e-3
    assert float(S.norm(r).max()) > 0.99 * eps  # reaches the boundary
    # each orthant equally likely
    counts = np.bincount(((r.numpy() > 0) * (2 ** np.arange(d))).sum(1), minlength=2**d)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_random_linf_coordinates_uniform():
    r = LinfBall(0.25).random((3000, 4), generator=torch.Generator().manual_seed(3))
    for j in range(4):
        assert stats.kstest(r[:, j].numpy(), "uniform", args=(-0.25, 0.5)).pvalue > 1e-3
    assert float(r.max()) > 0.249 and float(r.min()) < -0.249


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_random_linf_is_the_scaled_rand_of_its_generator_in_every_dtype(dtype):
    # seeded starts stay what they were: ε · (2 · rand − 1), whichever kernel draws them
    r = LinfBall(0.25).random((64, 33), generator=torch.Generator().manual_seed(5), dtype=dtype)
    u = torch.rand((64, 33), generator=torch.Generator().manual_seed(5), dtype=dtype)
    assert r.dtype == dtype and torch.equal(r, (2 * u - 1) * 0.25)


def test_random_per_example_eps():
    eps = torch.tensor([0.0, 0.1, 1.0])
    for cls in BALLS:
        S = cls(eps)
        r = S.random((50, 3, 4), generator=torch.Generator().manual_seed(0), event_ndim=1)
        n = S.norm(r, 1)
        assert n.shape == (50, 3)
        assert bool((n[:, 0] == 0).all())
        assert bool((n <= eps * (1 + 1e-5)).all())
        assert float(n[:, 2].max()) > 0.5


# ------------------------------------------------------------------------------------------------
# ascent steps
# ------------------------------------------------------------------------------------------------

grads = st.integers(1, 10).flatmap(
    lambda d: st.lists(
        st.lists(st.floats(-5, 5, allow_nan=False, allow_subnormal=False), min_size=d, max_size=d),
        min_size=1,
        max_size=4,
    )
)


@pytest.mark.parametrize("cls", BALLS)
@given(g=grads, step=st.floats(0.0, 2.0, allow_nan=False))
def test_ascent_step_gain_is_step_times_dual_norm(cls, g, step):
    S = cls(1.0)
    grad = torch.tensor(g, dtype=torch.float64)
    delta = torch.zeros_like(grad) + 0.1
    new = S.ascent_step(delta, grad, step)
    gain = ((new - delta) * grad).sum(-1).numpy()
    dual = np.array([_np_norm(row, DUAL_ORD[cls]) for row in np.array(g)])
    np.testing.assert_allclose(gain, step * dual, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(S.dual_norm(grad), torch.tensor(dual, dtype=torch.float64))
    # the step itself has unit norm (or is 0 at grad = 0)
    step_norm = S.norm(new - delta).numpy()
    expected = np.where(np.abs(np.array(g)).max(-1) > 0, step, 0.0)
    np.testing.assert_allclose(step_norm, expected, rtol=1e-10, atol=1e-12)


def test_l1_ascent_step_is_sparse_with_one_coordinate_on_ties():
    S = L1Ball(1.0)
    grad = torch.tensor([[0.5, -2.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    new = S.ascent_step(torch.zeros(2, 4), grad, 0.3)
    assert int((new[0] != 0).sum()) == 1
    assert float(new[0].abs().sum()) == pytest.approx(0.3)
    assert float((new[0] * grad[0]).sum()) == pytest.approx(0.6)
    assert torch.equal(new[1], torch.zeros(4))


def test_l2_ascent_step_safe_at_zero_gradient():
    new = L2Ball(1.0).ascent_step(torch.ones(2, 3), torch.zeros(2, 3), 0.5)
    assert torch.equal(new, torch.ones(2, 3))


# ------------------------------------------------------------------------------------------------
# layout: per-example eps, lead dims, event_ndim
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", BALLS)
def test_per_example_eps_and_lead_dims_match_a_loop(cls):
    g = torch.Generator().manual_seed(6)
    m, B = 3, 4
    eps = torch.tensor([0.0, 0.05, 0.5, 2.0])
    x = torch.rand(B, 2, 3, 3, generator=g)
    z = torch.randn(m, B, 2, 3, 3, generator=g)
    for lower, upper in [(None, None), (0.0, 1.0)]:
        S = cls(eps, lower=lower, upper=upper)
        xb = None if lower is None else x
        p = S.project(z, xb, event_ndim=3)
        inside = S.contains(p, xb, event_ndim=3)
        assert inside.shape == (m, B) and bool(inside.all())
        for i in range(m):
            for b in range(B):
                Sb = cls(float(eps[b]), lower=lower, upper=upper)
                xi = None if lower is None else x[b : b + 1]
                ref = Sb.project(z[i, b : b + 1], xi)
                torch.testing.assert_close(p[i, b : b + 1], ref)
        assert torch.equal(S.norm(p, 3)[:, 0], torch.zeros(m))


@pytest.mark.parametrize("S", [LinfBall(0.3), L2Ball(0.3), L1Ball(0.3)], ids=repr)
def test_event_ndim_is_equivalent_to_flattening(S):
    z = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(9))
    p = S.project(z)  # default event_ndim = 2
    torch.testing.assert_close(p, S.project(z.reshape(5, 12)).reshape(5, 3, 4))
    torch.testing.assert_close(S.norm(z), S.norm(z.reshape(5, 12)))
    # the same tensor read as [lead=5, B=3, event=4]: norms per row
    assert S.norm(z, 1).shape == (5, 3)
    assert S.contains(S.project(z, event_ndim=1), event_ndim=1).shape == (5, 3)
    # event_ndim = 0: every entry is a one-dimensional example
    q = S.project(z, event_ndim=0)
    torch.testing.assert_close(q, z.clamp(-0.3, 0.3))


# ------------------------------------------------------------------------------------------------
# validation and repr
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", BALLS)
def test_bad_eps_raises(cls):
    with pytest.raises(ValueError, match=r"eps must be ≥ 0, got -0\.1"):
        cls(-0.1)
    with pytest.raises(ValueError, match="eps must be ≥ 0, got nan"):
        cls(float("nan"))
    with pytest.raises(ValueError, match="eps must be ≥ 0"):
        cls(torch.tensor([0.1, -1.0]))
    with pytest.raises(ValueError, match="eps must be ≥ 0"):
        cls(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="finite"):
        cls(float("inf"))
    with pytest.raises(ValueError, match="0-dim or 1-dim"):
        cls(torch.ones(2, 2))
    S = cls(torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"len\(eps\) = 3 .*B = 4"):
        S.project(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"len\(eps\) = 3 .*B = 2"):
        S.random((6, 2, 5), event_ndim=1)


@pytest.mark.parametrize("cls", BALLS)
def test_missing_x_with_bounds_raises(cls):
    S = cls(0.1, lower=0.0, upper=1.0)
    z = torch.zeros(2, 3)
    for call in (
        lambda: S.project(z),
        lambda: S.contains(z),
        lambda: S.random((2, 3)),
    ):
        with pytest.raises(ValueError, match="needs the clean input x"):
            call()
    # without bounds x is optional
    assert cls(0.1).project(z).shape == z.shape


def test_bad_event_ndim_and_step_raise():
    S = LinfBall(0.1)
    with pytest.raises(ValueError, match="event_ndim must be in"):
        S.project(torch.zeros(2, 3), event_ndim=2)
    with pytest.raises(ValueError, match="step_size has length"):
        S.ascent_step(torch.zeros(2, 3), torch.ones(2, 3), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="grad shape"):
        S.ascent_step(torch.zeros(2, 3), torch.ones(3, 2), 0.1)


def test_repr():
    assert repr(LinfBall(0.0314)) == "LinfBall(eps=0.0314)"
    assert repr(L2Ball(0.5, lower=0.0, upper=1.0)) == "L2Ball(eps=0.5, lower=0, upper=1)"
    assert repr(L1Ball(torch.ones(128))) == "L1Ball(eps=tensor[128])"
    assert repr(Box(0.0, torch.ones(3, 1, 1))) == "Box(lower=0, upper=tensor[3, 1, 1])"
