"""The exact solvers (Wolfe's algorithm, NNLS): agreement with each other and with an
interior-point QP, large m, scale and permutation invariance, and the product of simplices."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minimax.minnorm import (
    kkt_residual,
    min_norm_point,
    min_norm_product_weights,
    min_norm_weights,
)
from tests.minimax.minnorm.families import (
    EXACT,
    FAMILIES,
    clarabel_qp,
    gram_of,
    make_vectors,
    objective,
    rel_gap,
    vector_sets,
)


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
