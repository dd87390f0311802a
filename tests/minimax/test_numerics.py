"""Numerics policy (docs/reliability.md): norms and thresholds are taken on scaled values, so
huge (1e300), tiny (1e-300) and subnormal inputs give the answers of unit-scale ones; ‖d‖ comes
from the vector itself."""

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

import minimax as mm
from minimax.sets.lp import project_l1

F64 = torch.float64


def _reference_l1(v, eps):
    """Projection onto the L1 ball by bisection on the threshold (float64, unit-scale inputs)."""
    a = v.abs()
    if float(a.sum()) <= eps:
        return v.clone()
    lo, hi = 0.0, float(a.max())
    for _ in range(200):
        mid = (lo + hi) / 2
        if float((a - mid).clamp_min(0).sum()) > eps:
            lo = mid
        else:
            hi = mid
    return torch.sign(v) * (a - hi).clamp_min(0)


rows = st.lists(st.floats(-4, 4, allow_nan=False, allow_subnormal=False), min_size=1, max_size=6)
exponents = st.integers(-1000, 1000)  # 2**k scales exactly (kept away from overflow below)


def _scaled(values, k):
    v = torch.tensor(values, dtype=F64)
    scale = 2.0**k if -1022 < k < 1020 else None
    return v, scale


@given(rows, st.floats(0.05, 3.0), exponents)
def test_l1_projection_at_any_magnitude(values, eps, k):
    v, scale = _scaled(values, k)
    if scale is None or not math.isfinite(float(v.abs().sum()) * scale):
        scale = 1.0
    got = project_l1((v * scale).unsqueeze(0), torch.tensor([[eps * scale]], dtype=F64))[0]
    expected = _reference_l1(v, eps) * scale
    assert bool(torch.isfinite(got).all())
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9 * eps * scale)


@given(rows, st.floats(0.05, 3.0), exponents)
def test_l2_projection_and_step_at_any_magnitude(values, eps, k):
    v, scale = _scaled(values, k)
    if scale is None or float(v.abs().max()) * scale * 3 > 1e308:
        scale = 1.0
    S = mm.L2Ball(eps * scale)
    got = S.project((v * scale).unsqueeze(0))[0]
    n = float(v.norm())
    expected = v * (eps / n) * scale if n > eps else v * scale
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-300)
    g = v * scale  # entries below the smallest subnormal are 0 here: the step sees this g
    step = mm.L2Ball(1.0).ascent_step(torch.zeros(1, len(values), dtype=F64), g.unsqueeze(0), 1.0)[
        0
    ]
    if bool((g != 0).any()):
        unit = g / g.abs().max()  # at unit scale, where the norm is exact
        torch.testing.assert_close(step.norm(), torch.tensor(1.0, dtype=F64))
        torch.testing.assert_close(step, unit / unit.norm())
    else:
        assert bool((step == 0).all())  # a zero gradient: no step


def test_huge_and_tiny_projections():
    big = torch.tensor([[1e308, -1e308, 5.0]], dtype=F64)
    torch.testing.assert_close(
        project_l1(big, torch.tensor([[1.0]], dtype=F64)),
        torch.tensor([[0.5, -0.5, 0.0]], dtype=F64),
    )
    torch.testing.assert_close(
        project_l1(torch.tensor([[1e200, 0.0]], dtype=F64), torch.tensor([[1.0]], dtype=F64)),
        torch.tensor([[1.0, 0.0]], dtype=F64),
    )
    tiny = torch.tensor([[1e-300, -3e-300]], dtype=F64)
    torch.testing.assert_close(
        project_l1(tiny, torch.tensor([[1e-300]], dtype=F64)),
        torch.tensor([[0.0, -1e-300]], dtype=F64),
    )
    out = mm.L2Ball(1.0).project(torch.tensor([[1e308, 1e308]], dtype=F64))
    torch.testing.assert_close(out, torch.full((1, 2), 0.5**0.5, dtype=F64))


def test_l2_step_from_an_underflowing_gradient_is_a_unit_step():
    """tests/minimax/sets/test_lp.py's once-flaky case: ‖g‖² underflows for g = [0, 2.26e-191]."""
    g = torch.tensor([[0.0, 2.26e-191]], dtype=F64)
    step = mm.L2Ball(1.0).ascent_step(torch.zeros_like(g), g, 1.0)
    torch.testing.assert_close(step, torch.tensor([[0.0, 1.0]], dtype=F64))
    torch.testing.assert_close(mm.L2Ball(1.0).dual_norm(g), torch.tensor([2.26e-191], dtype=F64))


def test_min_norm_weights_when_the_trace_overflows_and_for_subnormal_grams():
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64)
    for scale in (9e153, 1.0, 1e-160):  # trace 3.2e308 (overflows); 1; 4e-320 (subnormal)
        K = (G * scale) @ (G * scale).T
        assert math.isinf(float(K.diagonal().sum())) == (scale > 1e150)
        for method in ("wolfe", "nnls", "frank-wolfe", "apg"):
            r = mm.min_norm_weights(K, method=method)
            torch.testing.assert_close(
                r.weights, torch.tensor([0.5, 0.5, 0.0], dtype=F64), atol=1e-6, rtol=0
            )
            assert float(r.kkt) < 1e-6
        torch.testing.assert_close(
            mm.linalg.kkt_residual(torch.tensor([0.5, 0.5, 0.0], dtype=F64), K),
            torch.tensor(0.0, dtype=F64),
            atol=1e-12,
            rtol=0,
        )
    wrong = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    huge = (G * 9e153) @ (G * 9e153).T
    assert float(mm.linalg.kkt_residual(wrong, huge)) > 0.1  # the residual sees wrong weights


def test_direction_norm_comes_from_the_vector_at_a_stationary_point():
    """Counterexample at x = (0, 0): gradients (0, 2) and (0, −2) cancel exactly; ‖d‖ is the
    vector's norm (0 or ~1e-16), not √(αᵀKα) (~1e-8 from cancellation)."""
    from minimax.testing import counterexample

    kp = counterexample(x=(1e-9, 0.0))
    d = mm.DDi()(kp.problem, kp.params, kp.batch, kp.candidates())
    torch.testing.assert_close(d.norm, mm.linalg.flat_norm(d.vector), rtol=0, atol=0)
    assert float(d.norm) < 1e-8
    normalized = mm.DDi(normalize=True)(kp.problem, kp.params, kp.batch, kp.candidates())
    assert abs(float(mm.linalg.flat_norm(normalized.vector)) - 1.0) < 1e-12


def test_flat_norm_scales():
    assert math.isclose(
        float(mm.linalg.flat_norm({"a": torch.tensor([3e200, 4e200], dtype=F64)})),
        5e200,
        rel_tol=1e-15,
    )
    assert math.isclose(
        float(mm.linalg.flat_norm({"a": torch.tensor([3e-300, 4e-300], dtype=F64)})),
        5e-300,
        rel_tol=1e-15,
    )
    assert float(mm.linalg.flat_norm({"a": torch.zeros(3)})) == 0.0
