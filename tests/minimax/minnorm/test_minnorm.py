"""Tests for minimax.minnorm: exactness, certificates, invariances, bad input, product problem."""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minimax.minnorm import (
    METHODS,
    MinNormConvergenceWarning,
    MinNormResult,
    kkt_residual,
    min_norm_point,
    min_norm_product_weights,
    min_norm_weights,
)

EXACT = ("wolfe", "nnls")
FAST = ("wolfe", "nnls", "frank-wolfe", "apg")  # cvxpylayers is tested separately (slow)
# Iterative methods get a generous budget in property tests; the bounds below are what that buys
# on these families (certificate violation / KKT residual, in units of tr(K)/m).
ITERATIVE_KW = {"frank-wolfe": {"max_iter": 20_000}, "apg": {"max_iter": 3000}}
CERT_TOL = {"wolfe": 1e-12, "nnls": 1e-12, "frank-wolfe": 1e-6, "apg": 1e-3, "cvxpylayers": 1e-6}
GAP_TOL = {"wolfe": 1e-10, "nnls": 1e-10, "frank-wolfe": 1e-6, "apg": 1e-3, "cvxpylayers": 1e-6}
FAMILIES = ("gaussian", "correlated", "rank-deficient", "origin-in-hull", "duplicates")


# --------------------------------------------------------------------------------------------
# Hard Gram families (local strategies; public ones will live in minimax.testing)
# --------------------------------------------------------------------------------------------


def make_vectors(family: str, m: int, seed: int, log10_scale: float = 0.0) -> np.ndarray:
    """m vectors [m, n] from a hard family, scaled by 10**log10_scale (so K by 10**(2·scale))."""
    rng = np.random.default_rng(seed)
    n = m + 2
    if family == "gaussian":
        G = rng.standard_normal((m, n))
    elif family == "correlated":  # a common part plus noise orthogonal to it: cos ≈ 0.9 .. 0.999
        cos = rng.choice([0.9, 0.99, 0.999])
        u = rng.standard_normal(n)
        Z = rng.standard_normal((m, n))
        Z -= np.outer(Z @ u / (u @ u), u)
        Z *= np.linalg.norm(u) / np.linalg.norm(Z, axis=1, keepdims=True)
        G = u + np.sqrt(1.0 / cos - 1.0) * Z
    elif family == "rank-deficient":  # m > dimension of the span
        r = int(rng.integers(1, max(2, m // 2) + 1))
        G = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    elif family == "origin-in-hull":  # ± pairs put the origin in the hull
        k = (m + 1) // 2
        H = rng.standard_normal((k, n))
        G = np.vstack([H, -H])[:m] if m > 1 else np.zeros((1, n))
        G = G[rng.permutation(m)]
    elif family == "duplicates":
        k = max(1, m // 2)
        H = rng.standard_normal((k, n)) + 2.0 * rng.standard_normal(n)
        G = H[rng.integers(0, k, size=m)]
    else:  # pragma: no cover
        raise AssertionError(family)
    return G * 10.0**log10_scale


@st.composite
def vector_sets(draw, families=FAMILIES, m_min: int = 1, m_max: int = 12, scales: bool = True):
    family = draw(st.sampled_from(families))
    m = draw(st.integers(m_min, m_max))
    seed = draw(st.integers(0, 2**32 - 1))
    s = draw(st.sampled_from([-6.0, -3.0, 0.0, 3.0, 6.0])) if scales else 0.0
    return torch.from_numpy(make_vectors(family, m, seed, s))


def gram_of(G: torch.Tensor) -> torch.Tensor:
    return G @ G.mT


def objective(weights: torch.Tensor, gram: torch.Tensor) -> float:
    return float(weights @ gram @ weights)


def rel_gap(f: float, f_ref: float, gram: torch.Tensor) -> float:
    """(f − f_ref) / max(f_ref, 1e-3·tr(K)/m): relative, absolute below 1e-3 × tr(K)/m."""
    m = gram.shape[-1]
    return (f - f_ref) / max(f_ref, 1e-3 * float(gram.trace()) / m, 1e-300)


def solve(gram: torch.Tensor, method: str) -> MinNormResult:
    return min_norm_weights(gram, method, **ITERATIVE_KW.get(method, {}))


def clarabel_qp(gram: np.ndarray, block_sizes: list[int]) -> np.ndarray:
    """High-accuracy general QP reference (cvxpy + CLARABEL), projected back onto the blocks."""
    import cvxpy as cp

    m = gram.shape[0]
    Kn = gram / (np.trace(gram) / m)
    Kn = 0.5 * (Kn + Kn.T)
    a = cp.Variable(m)
    cons = [a >= 0]
    start = 0
    for s in block_sizes:
        cons.append(cp.sum(a[start : start + s]) == 1)
        start += s
    prob = cp.Problem(cp.Minimize(cp.quad_form(a, cp.psd_wrap(Kn))), cons)
    with warnings.catch_warnings():  # "solution may be inaccurate" on degenerate instances
        warnings.simplefilter("ignore", UserWarning)
        prob.solve(
            solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500
        )
    x = np.maximum(np.asarray(a.value), 0.0)
    out, start = np.empty(m), 0
    for s in block_sizes:
        out[start : start + s] = x[start : start + s] / x[start : start + s].sum()
        start += s
    return out


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


@pytest.mark.parametrize("method", EXACT)
@settings(max_examples=15)
@given(G=vector_sets(m_min=20, m_max=64, scales=False))
def test_exact_large_m(method, G):
    K = gram_of(G)
    f_ref = min_norm_weights(K, "nnls" if method == "wolfe" else "wolfe").sq_norm.item()
    res = min_norm_weights(K, method)
    assert abs(rel_gap(res.sq_norm.item(), f_ref, K)) <= 1e-10
    assert res.kkt.item() <= 1e-12


@settings(max_examples=20)
@given(G=vector_sets(m_min=3, m_max=15, scales=False))
def test_nnls_reference_matches_clarabel(G):
    K = gram_of(G)
    f = min_norm_weights(K, "nnls").sq_norm.item()
    w_qp = torch.from_numpy(clarabel_qp(K.numpy(), [K.shape[0]]))
    f_qp = objective(w_qp, K)
    assert rel_gap(f, f_qp, K) <= 1e-10  # never worse than the interior-point answer
    assert rel_gap(f_qp, f, K) <= 1e-3  # and the QP really is near it (degenerate: ~√tol)


def test_rank_deficient_many_vectors_in_3d():
    rng = np.random.default_rng(3)
    G = torch.from_numpy(rng.standard_normal((64, 3)) + np.array([5.0, 0.0, 0.0]))
    K = gram_of(G)
    res_w, res_n = min_norm_weights(K, "wolfe"), min_norm_weights(K, "nnls")
    assert abs(rel_gap(res_w.sq_norm.item(), res_n.sq_norm.item(), K)) <= 1e-12
    assert (res_w.weights > 0).sum() <= 3  # a face of the hull in R³
    assert res_w.kkt.item() <= 1e-13


# --------------------------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", EXACT)
@given(G=vector_sets(scales=False), log_s=st.sampled_from([-6, -3, 3, 6]))
def test_scale_invariance(method, G, log_s):
    """K ↦ s²K (s = 10^log_s, so K spans 1e-12 .. 1e12): same point up to s, ‖d‖² × s²."""
    s = 10.0**log_s
    d1, r1 = min_norm_point(G, method)
    ds, rs = min_norm_point(G * s, method)
    scale = G.norm(dim=1).max().item()
    torch.testing.assert_close(ds / s, d1, atol=1e-6 * scale, rtol=0)
    unit = (G * G).sum().item() / G.shape[0]
    assert rs.sq_norm.item() / s**2 == pytest.approx(r1.sq_norm.item(), rel=1e-9, abs=1e-13 * unit)
    # a power-of-two scale leaves the normalized problem bitwise identical
    r2 = min_norm_weights(gram_of(G) * 2.0**40, method)
    assert torch.equal(r2.weights, r1.weights)


@pytest.mark.parametrize("method", EXACT)
@given(G=vector_sets(m_min=2), data=st.data())
def test_permutation_and_duplicates(method, G, data):
    m = G.shape[0]
    d, r = min_norm_point(G, method)
    unit = (G * G).sum().item() / m
    perm = torch.tensor(data.draw(st.permutations(range(m))))
    dp, rp = min_norm_point(G[perm], method)
    dup = data.draw(st.integers(0, m - 1))
    dd, rd = min_norm_point(torch.cat([G, G[dup : dup + 1]]), method)
    for r_other, d_other in ((rp, dp), (rd, dd)):
        assert r_other.sq_norm.item() == pytest.approx(
            r.sq_norm.item(), rel=1e-10, abs=1e-14 * unit
        )
        torch.testing.assert_close(d_other, d, atol=1e-6 * unit**0.5, rtol=0)


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


def test_frank_wolfe_and_apg_improve_with_budget():
    K = gram_of(torch.from_numpy(make_vectors("correlated", 20, 1)))
    f_ref = min_norm_weights(K).sq_norm.item()
    for method in ("frank-wolfe", "apg"):
        gaps = [
            rel_gap(min_norm_weights(K, method, max_iter=k).sq_norm.item(), f_ref, K)
            for k in (5, 50, 5000)
        ]
        assert gaps[2] <= gaps[0] and gaps[2] <= 1e-6


# --------------------------------------------------------------------------------------------
# KKT residual
# --------------------------------------------------------------------------------------------


def test_kkt_residual_formula():
    K = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # tr/m = 3
    assert kkt_residual(torch.tensor([0.25, 0.75]).double(), K).item() <= 1e-15
    # vertex e_1: Kn = K/3, r = (4/3, 1/3), λ = 4/3: dual violation 1, complementarity 0
    assert kkt_residual(torch.tensor([1.0, 0.0]).double(), K).item() == pytest.approx(1.0)
    # infeasible weights are reported
    assert kkt_residual(torch.tensor([0.6, 0.6]).double(), K).item() >= 0.2 - 1e-12
    assert kkt_residual(torch.tensor([1.2, -0.2]).double(), K).item() >= 0.2 - 1e-12
    # broadcasting one weight vector over a batch of Gram matrices
    w = torch.tensor([0.25, 0.75]).double()
    out = kkt_residual(w, torch.stack([K, 2 * K, K.flip(0, 1)]))
    assert out.shape == (3,) and out[0] <= 1e-15 and out[1] <= 1e-15 and out[2] > 0.1
    # blocks: two independent 1-vertex blocks are always optimal
    assert kkt_residual(torch.ones(2).double(), K, [1, 1]).item() <= 1e-15
    with pytest.raises(ValueError, match="weights must be"):
        kkt_residual(torch.ones(3), K)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gram", "match"),
    [
        (torch.ones(3), "shape \\[..., m, m\\]"),
        (torch.ones(2, 3), "square"),
        (torch.ones(0, 0), "empty"),
        (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), "NaN or Inf"),
        (torch.tensor([[1.0, float("inf")], [float("inf"), 1.0]]), "NaN or Inf"),
        (torch.tensor([[1.0, 0.5], [0.2, 1.0]]), "not symmetric.*\\(K \\+ K.mT\\) / 2"),
        (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "not positive semidefinite"),
        (torch.tensor([[-1.0]]), "not positive semidefinite"),
        (np.eye(2), "torch.Tensor"),
        (torch.eye(2, dtype=torch.complex128), "real"),
    ],
)
def test_bad_gram_raises(gram, match):
    with pytest.raises(ValueError, match=match):
        min_norm_weights(gram)
    if isinstance(gram, torch.Tensor) and gram.dim() == 2 and gram.shape[0] == gram.shape[1] > 0:
        with pytest.raises(ValueError, match=match):
            min_norm_product_weights(gram, [gram.shape[0]])


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


# --------------------------------------------------------------------------------------------
# Product of simplices
# --------------------------------------------------------------------------------------------


@given(G=vector_sets(m_min=1, m_max=16))
def test_product_one_block_is_simplex(G):
    K = gram_of(G)
    a = min_norm_product_weights(K, [K.shape[0]])
    b = min_norm_weights(K, "nnls")
    assert abs(rel_gap(a.sq_norm.item(), b.sq_norm.item(), K)) <= 1e-10
    assert a.kkt.item() <= 1e-12 and a.method == "product-wolfe"


@settings(max_examples=25)
@given(
    family=st.sampled_from(FAMILIES),
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=8),
    seed=st.integers(0, 2**32 - 1),
    log_s=st.sampled_from([-3.0, 0.0, 3.0]),
)
def test_product_matches_clarabel(family, sizes, seed, log_s):
    m = sum(sizes)
    G = torch.from_numpy(make_vectors(family, m, seed, log_s))
    K = gram_of(G)
    res = min_norm_product_weights(K, sizes)
    w = res.weights
    starts = np.cumsum([0, *sizes])
    for a, b in itertools.pairwise(starts):
        assert (w[a:b] >= 0).all() and abs(w[a:b].sum().item() - 1.0) <= 1e-12
    assert res.kkt.item() <= 1e-12
    w_qp = torch.from_numpy(clarabel_qp(K.numpy(), sizes))
    f, f_qp = objective(w, K), objective(w_qp, K)
    assert rel_gap(f, f_qp, K) <= 1e-10
    assert rel_gap(f_qp, f, K) <= 1e-2  # loose check of the reference (interior point stalls)
    torch.testing.assert_close(res.kkt, kkt_residual(w, K, sizes))


@given(G1=vector_sets(m_max=6, scales=False), G2=vector_sets(m_max=6, scales=False))
def test_product_block_diagonal_separates(G1, G2):
    """Orthogonal blocks: the product problem splits into two simplex problems."""
    m1, m2 = G1.shape[0], G2.shape[0]
    n1, n2 = G1.shape[1], G2.shape[1]
    G = torch.zeros(m1 + m2, n1 + n2, dtype=torch.float64)
    G[:m1, :n1], G[m1:, n1:] = G1, G2
    res = min_norm_product_weights(gram_of(G), [m1, m2])
    f1 = min_norm_weights(gram_of(G1)).sq_norm.item()
    f2 = min_norm_weights(gram_of(G2)).sq_norm.item()
    unit = (G * G).sum().item() / (m1 + m2)
    assert res.sq_norm.item() == pytest.approx(f1 + f2, rel=1e-10, abs=1e-13 * unit)


def test_product_64_blocks_fast_and_exact():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((640, 200)) + 3.0 * rng.standard_normal(200)
    K = torch.from_numpy(G @ G.T)
    t0 = time.perf_counter()
    res = min_norm_product_weights(K, [10] * 64)
    elapsed = time.perf_counter() - t0
    assert res.kkt.item() <= 1e-12
    assert elapsed < 2.0  # ≈ 0.05 s on a 2-core CPU
    assert res.weights.reshape(64, 10).sum(-1).sub(1).abs().max() <= 1e-12
    singles = torch.ones(5, dtype=torch.float64)
    torch.testing.assert_close(min_norm_product_weights(torch.eye(5), [1] * 5).weights, singles)
    zero = min_norm_product_weights(torch.zeros(5, 5), [2, 3])
    torch.testing.assert_close(zero.weights, torch.tensor([0.5, 0.5, 1 / 3, 1 / 3, 1 / 3]).double())


def test_product_batched_equals_loop():
    rng = np.random.default_rng(1)
    K = gram_of(torch.from_numpy(rng.standard_normal((3, 9, 4))))
    res = min_norm_product_weights(K, [4, 5])
    for b in range(3):
        single = min_norm_product_weights(K[b], [4, 5])
        torch.testing.assert_close(res.weights[b], single.weights, atol=0, rtol=0)


# --------------------------------------------------------------------------------------------
# Differentiable backend
# --------------------------------------------------------------------------------------------


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
