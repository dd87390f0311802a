"""Hard families of vectors for the min-norm solvers' tests (a helper module, imported by them).

- `make_vectors(family, m, seed, log10_scale=0) -> [m, m + 2]`, float64 (numpy), one of the
  `FAMILIES`: gaussian, correlated (cosines 0.9 .. 0.999), rank-deficient, origin-in-hull (± pairs),
  duplicates;
- `vector_sets(families, m_min, m_max, scales)`: a hypothesis strategy of such sets as tensors;
- `gram_of`, `objective`, `rel_gap`: K = G Gᵀ, αᵀKα, and the gap relative to
  max(f_ref, 1e-3·tr(K)/m);
- `EXACT`: the exact methods' names;
- `clarabel_qp(gram, block_sizes)`: an interior-point reference over a product of simplices."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from hypothesis import strategies as st

EXACT = ("wolfe", "nnls")
FAMILIES = ("gaussian", "correlated", "rank-deficient", "origin-in-hull", "duplicates")


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
