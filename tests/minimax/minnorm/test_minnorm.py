"""`min_norm_weights` over every method of `METHODS`: the paper's example, closed forms, feasibility
and certificates, the origin in the hull, batches, dtypes, iteration caps and bad arguments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given

from minimax.minnorm import (
    METHODS,
    MinNormConvergenceWarning,
    MinNormResult,
    kkt_residual,
    min_norm_point,
    min_norm_product_weights,
    min_norm_weights,
)
from tests.minimax.minnorm.families import (
    EXACT,
    FAMILIES,
    gram_of,
    make_vectors,
    objective,
    rel_gap,
    vector_sets,
)

FAST = ("wolfe", "nnls", "frank-wolfe", "apg")  # cvxpylayers is tested separately (slow)
# Iterative methods get a generous budget in property tests; the bounds below are what that buys
# on these families (certificate violation / KKT residual, in units of tr(K)/m).
ITERATIVE_KW = {"frank-wolfe": {"max_iter": 20_000}, "apg": {"max_iter": 3000}}
CERT_TOL = {"wolfe": 1e-12, "nnls": 1e-12, "frank-wolfe": 1e-6, "apg": 1e-3, "cvxpylayers": 1e-6}
GAP_TOL = {"wolfe": 1e-10, "nnls": 1e-10, "frank-wolfe": 1e-6, "apg": 1e-3, "cvxpylayers": 1e-6}


def solve(gram: torch.Tensor, method: str) -> MinNormResult:
    return min_norm_weights(gram, method, **ITERATIVE_KW.get(method, {}))


# --------------------------------------------------------------------------------------------
# The paper's example and closed forms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_paper_two_gradients(method):
    G = torch.tensor([[2.0, 2.0], [2.0, -2.0]])
    d, res = min_norm_point(G, method)
    torch.testing.assert_close(res.weights, torch.tensor([0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(d, torch.tensor([2.0, 0.0]))
    assert d.dtype == torch.float32 and res.weights.dtype == torch.float64
    assert res.sq_norm.item() == pytest.approx(4.0)
    assert res.iterations.item() == 0  # closed form


@pytest.mark.parametrize("method", METHODS)
def test_paper_gradients_plus_far_vertex(method):
    """m = 3 goes through the real solver: the extra gradient (3, 1) gets no weight."""
    G = torch.tensor([[2.0, 2.0], [2.0, -2.0], [3.0, 1.0]], dtype=torch.float64)
    d, res = min_norm_point(G, method)
    tol = 1e-9 if method in EXACT else 2e-3
    torch.testing.assert_close(d, torch.tensor([2.0, 0.0], dtype=torch.float64), atol=tol, rtol=0)
    torch.testing.assert_close(
        res.weights, torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64), atol=tol, rtol=0
    )


@pytest.mark.parametrize("method", METHODS)
def test_m1_and_m2_closed_forms(method):
    r1 = min_norm_weights(torch.tensor([[3.0]]), method)
    assert r1.weights.tolist() == [1.0] and r1.sq_norm.item() == pytest.approx(3.0)
    # α₁ = clip((K22 − K12)/(K11 + K22 − 2K12), 0, 1)
    K = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    r2 = min_norm_weights(K, method)
    torch.testing.assert_close(r2.weights, torch.tensor([0.25, 0.75], dtype=torch.float64))
    K = torch.tensor([[1.0, 2.0], [2.0, 9.0]], dtype=torch.float64)  # clipped: vertex 1 wins
    torch.testing.assert_close(
        min_norm_weights(K, method).weights, torch.tensor([1.0, 0.0]).double()
    )
    dup = torch.ones(2, 2, dtype=torch.float64)  # identical vectors: any weights, we give ½
    torch.testing.assert_close(
        min_norm_weights(dup, method).weights, torch.full((2,), 0.5).double()
    )


@pytest.mark.parametrize("method", METHODS)
def test_all_zero_vectors(method):
    res = min_norm_weights(torch.zeros(4, 4), method)
    torch.testing.assert_close(res.weights, torch.full((4,), 0.25, dtype=torch.float64))
    assert res.sq_norm.item() == 0.0 and res.kkt.item() == 0.0


# --------------------------------------------------------------------------------------------
# Properties of every method
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", FAST)
@given(G=vector_sets())
def test_feasible_and_certified(method, G):
    K = gram_of(G)
    m = K.shape[-1]
    res = solve(K, method)
    w = res.weights
    assert w.shape == (m,) and w.dtype == torch.float64
    assert (w >= 0).all() and abs(w.sum().item() - 1.0) <= 1e-12
    unit = K.trace().item() / m
    f = objective(w, K)
    assert res.sq_norm.item() == pytest.approx(max(f, 0.0), rel=1e-9, abs=1e-13 * unit)
    # ⟨g_j, d⟩ ≥ ‖d‖² − tol for every j: the Danskin certificate
    assert ((K @ w) - f).min().item() >= -CERT_TOL[method] * unit
    assert res.kkt.item() <= CERT_TOL[method]
    torch.testing.assert_close(res.kkt, kkt_residual(w, K))


@pytest.mark.parametrize("method", FAST)
@given(G=vector_sets())
def test_gap_to_nnls_reference(method, G):
    K = gram_of(G)
    f_ref = min_norm_weights(K, "nnls").sq_norm.item()
    f = solve(K, method).sq_norm.item()
    assert rel_gap(f, f_ref, K) <= GAP_TOL[method]
    if method in EXACT:
        assert rel_gap(f_ref, f, K) <= GAP_TOL[method]


# --------------------------------------------------------------------------------------------
# The origin in the hull, batches
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", FAST)
@given(G=vector_sets(families=("origin-in-hull",), m_min=2))
def test_origin_in_hull_gives_zero(method, G):
    unit = (G * G).sum().item() / G.shape[0]
    d, res = min_norm_point(G, method, **ITERATIVE_KW.get(method, {}))
    assert res.sq_norm.item() <= CERT_TOL[method] * unit
    if method in EXACT:
        assert d.norm().item() <= 1e-7 * unit**0.5


@pytest.mark.parametrize("method", METHODS)
def test_batched_equals_loop(method):
    rng = np.random.default_rng(7)
    Gs = [make_vectors(f, 5, int(rng.integers(1 << 30))) for f in FAMILIES[:4]]
    G = torch.from_numpy(np.stack(Gs)).reshape(2, 2, 5, 7)
    K = gram_of(G)
    res = min_norm_weights(K, method)
    assert res.weights.shape == (2, 2, 5) and res.kkt.shape == (2, 2)
    assert res.iterations.shape == (2, 2) and res.sq_norm.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            single = min_norm_weights(K[i, j], method)
            tol = 1e-12 if method != "cvxpylayers" else 1e-7
            torch.testing.assert_close(res.weights[i, j], single.weights, atol=tol, rtol=0)
            assert res.iterations[i, j] == single.iterations
    assert "batch=(2, 2)" in repr(res)
    empty = min_norm_weights(torch.zeros(0, 3, 3), method)
    assert empty.weights.shape == (0, 3) and "batch=(0,)" in repr(empty)


# --------------------------------------------------------------------------------------------
# dtypes, devices, repr, iteration caps
# --------------------------------------------------------------------------------------------


def test_dtypes_and_repr():
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float32)
    d, res = min_norm_point(G)
    assert d.dtype == torch.float32 and res.weights.dtype == torch.float64
    torch.testing.assert_close(d, torch.tensor([0.5, 0.5]))
    assert res.iterations.dtype == torch.int64
    text = repr(res)
    assert text.startswith("MinNormResult(method='wolfe', m=3") and "weights=[0.5, 0.5, 0]" in text
    resi = min_norm_weights(torch.tensor([[2, 0], [0, 2]]))  # integer input is accepted
    torch.testing.assert_close(resi.weights, torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_iteration_caps():
    K = gram_of(torch.from_numpy(make_vectors("gaussian", 30, 0)))
    assert (min_norm_weights(K, "apg", max_iter=7).iterations == 7).all()
    assert min_norm_weights(K, "frank-wolfe", max_iter=3, tol=0.0).iterations.item() == 3
    with pytest.warns(MinNormConvergenceWarning, match="iteration cap 2"):
        r = min_norm_weights(K, "wolfe", max_iter=2)
    assert r.iterations.item() <= 2 and r.kkt.item() > 1e-6  # not certified, and it says so
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = min_norm_weights(K, "wolfe")
    assert full.kkt.item() <= 1e-13 and full.iterations.item() <= 25 * 30 + 100
    with pytest.warns(MinNormConvergenceWarning):
        min_norm_product_weights(K, [10, 10, 10], max_iter=1)
    with pytest.warns(MinNormConvergenceWarning, match="nnls"):
        r = min_norm_weights(K, "nnls", max_iter=1)
    assert r.kkt.item() > 1e-6 and abs(r.weights.sum().item() - 1) < 1e-12


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_arguments_raise():
    K = torch.eye(3)
    with pytest.raises(ValueError, match=r"unknown method 'qp'.*wolfe, nnls, frank-wolfe, apg"):
        min_norm_weights(K, "qp")
    with pytest.raises(ValueError, match="tol"):
        min_norm_weights(K, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        min_norm_weights(K, max_iter=-3)
    with pytest.raises(ValueError, match="sum to 4 but gram has m = 3"):
        min_norm_product_weights(K, [2, 2])
    with pytest.raises(ValueError, match="positive integers"):
        min_norm_product_weights(K, [3, 0])
    with pytest.raises(ValueError, match="positive integers"):
        min_norm_product_weights(K, [1.5, 1.5])
    with pytest.raises(ValueError, match="vectors must be"):
        min_norm_point(torch.ones(3))
    with pytest.raises(ValueError, match="empty"):
        min_norm_point(torch.ones(0, 3))
    # tiny asymmetry is symmetrized, not rejected
    K2 = torch.tensor([[2.0, 1.0], [1.0 + 1e-12, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(min_norm_weights(K2).weights, torch.full((2,), 0.5).double())
