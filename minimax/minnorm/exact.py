"""Exact simplex-QP solvers (numpy float64, one problem at a time): closed forms for m ≤ 2,
Wolfe's min-norm-point algorithm over a product of simplices, and the NNLS reduction."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import lapack

from minimax.minnorm.base import MinNormConvergenceWarning, kkt_gap

__all__ = ["active_set", "affine_min", "closed_form", "nnls_one", "wolfe_batch"]


def closed_form(Kn: np.ndarray) -> np.ndarray:
    """Weights for m ≤ 2 [m] from Kn [m, m]."""
    if Kn.shape[0] == 1:
        return np.ones(1)
    den = Kn[0, 0] + Kn[1, 1] - 2.0 * Kn[0, 1]  # ‖g_1 − g_2‖² ≥ 0
    a = 0.5 if den <= 0 else min(max((Kn[1, 1] - Kn[0, 1]) / den, 0.0), 1.0)
    return np.array([a, 1.0 - a])


def affine_min(Kn: np.ndarray, Sa: np.ndarray, bS: np.ndarray, p: int) -> np.ndarray:
    """Minimizer y [|S|] of yᵀ Kn_SS y subject to Σ_{i∈S, block j} y_i = 1 for every block j.

    Null-space method: the first index of each block in S is its pivot; y = y0 + N t with y0 = 1 on
    the pivots and the columns of N = e_i − e_pivot(i) for the other indices, so the reduced
    Hessian NᵀKnN is the Gram matrix of the differences g_i − g_pivot(i): positive definite when
    the corral is affinely independent block-wise (which Wolfe's rule maintains), hence Cholesky;
    least squares if rounding makes it singular. Cost O((|S| − p)³), small even for many blocks.
    """
    k = Sa.shape[0]
    K = Kn[Sa[:, None], Sa]
    y = np.zeros(k)
    if p == 1:
        if k == 1:
            y[0] = 1.0
            return y
        H = K[1:, 1:] - K[1:, :1] - K[:1, 1:] + K[0, 0]
        rhs = K[0, 0] - K[1:, 0]
        _, t, info = lapack.dposv(H, rhs)
        if info != 0:
            t = np.linalg.lstsq(H, rhs, rcond=None)[0]
        y[1:] = t
        y[0] = 1.0 - t.sum()
        return y
    first = np.full(p, -1)
    first[bS[::-1]] = np.arange(k - 1, -1, -1)  # last write wins: the first position per block
    piv_pos = first[first >= 0]
    is_piv = np.zeros(k, dtype=bool)
    is_piv[piv_pos] = True
    free = np.flatnonzero(~is_piv)
    y[piv_pos] = 1.0
    if free.size == 0:
        return y
    fpiv = first[bS[free]]
    Kf = K[free]
    Kp = K[fpiv]
    H = Kf[:, free] - Kf[:, fpiv] - Kp[:, free] + Kp[:, fpiv]
    c = K[:, piv_pos].sum(axis=1)  # Kn_SS y0
    rhs = c[fpiv] - c[free]
    _, t, info = lapack.dposv(H, rhs)
    if info != 0:
        t = np.linalg.lstsq(H, rhs, rcond=None)[0]
    y[free] = t
    y -= np.bincount(fpiv, weights=t, minlength=k)
    return y


def active_set(
    Kn: np.ndarray, bid: np.ndarray, p: int, tol: float, max_iter: int
) -> tuple[np.ndarray, int, bool]:
    """Wolfe's min-norm-point algorithm on a Gram matrix, over a product of simplices.

    Kn [m, m] normalized Gram matrix; bid [m] block of each index (p blocks). The corral S always
    holds ≥ 1 index per block and x (weights on S) is the affine minimizer over S. Major cycle:
    add the index with the most negative reduced cost (Knα)_i − λ_block(i). Minor cycle: move
    towards the affine minimizer of the enlarged corral until a weight hits zero, drop it, repeat.
    Finite in exact arithmetic (the objective strictly decreases across major cycles, so no corral
    repeats); numerically we also stop when a corral repeats (anti-cycling) or after max_iter
    linear solves. Returns (weights [m], linear solves used, converged).
    """
    m = Kn.shape[0]
    diag = np.diag(Kn)
    thr = tol * max(float(diag.max()), 1e-300)
    Sa = _shortest_per_block(diag, bid, p)
    x = np.ones(p)
    seen: set[bytes] = set()
    it = 0
    converged = False
    while True:
        r = x @ Kn[Sa]  # Kn α (Kn symmetric; row gathers are contiguous)
        rS = r[Sa]
        if p == 1:
            red = r - float(x @ rS)
        else:
            red = r - np.bincount(bid[Sa], weights=x * rS, minlength=p)[bid]
        red[Sa] = np.inf
        j = int(np.argmin(red))
        if not red[j] < -thr:
            converged = True
            break
        key = np.sort(Sa).tobytes()
        if key in seen:  # a corral repeats: stalled at rounding level, stop (anti-cycling)
            converged = True
            break
        if it >= max_iter:
            break
        seen.add(key)
        Sa = np.append(Sa, j)
        x = np.append(x, 0.0)
        capped = True
        while it < max_iter:  # minor cycles
            it += 1
            bS = bid[Sa]
            y = affine_min(Kn, Sa, bS, p)
            if (y > 0).all():
                x = y
                capped = False
                break
            x, Sa = _toward(x, y, Sa, bid, p)
        if capped:
            break
    alpha = np.zeros(m)
    alpha[Sa] = x
    return alpha, it, converged


def _shortest_per_block(diag: np.ndarray, bid: np.ndarray, p: int) -> np.ndarray:
    """`active_set`'s first corral: the index of the shortest vector of each block [p]."""
    if p == 1:
        return np.array([int(np.argmin(diag))])
    order = np.lexsort((diag, bid))
    starts = np.concatenate(([0], np.cumsum(np.bincount(bid, minlength=p))[:-1]))
    return order[starts]


def _toward(
    x: np.ndarray, y: np.ndarray, Sa: np.ndarray, bid: np.ndarray, p: int
) -> tuple[np.ndarray, np.ndarray]:
    """One minor cycle of `active_set`: move the corral's weights x towards its affine minimizer
    y (some y_i ≤ 0) until the first weight hits zero, drop it (and any at rounding level), and
    renormalize each block; returns the new (weights, corral)."""
    neg = np.flatnonzero(y <= 0)
    denom = x[neg] - y[neg]
    ratios = np.where(denom > 0, x[neg] / np.where(denom > 0, denom, 1.0), 0.0)
    arg = int(np.argmin(ratios))
    theta = min(float(ratios[arg]), 1.0)
    x = x + theta * (y - x)
    keep = np.ones(Sa.shape[0], dtype=bool)
    keep[neg[x[neg] <= 1e-15 * float(np.abs(y).max())]] = False
    keep[neg[arg]] = False
    Sa = Sa[keep]
    x = np.maximum(x[keep], 0.0)
    if p == 1:
        x /= x.sum()
    else:
        bS = bid[Sa]
        x /= np.bincount(bS, weights=x, minlength=p)[bS]
    return x, Sa


def wolfe_batch(
    Kn: np.ndarray, bid: np.ndarray, p: int, tol: float, max_iter: int | None, method: str
) -> tuple[np.ndarray, np.ndarray]:
    B, m = Kn.shape[0], Kn.shape[-1]
    cap = max_iter if max_iter is not None else 25 * m + 100
    alpha = np.empty((B, m))
    iters = np.zeros(B, dtype=np.int64)
    failed = []
    for b in range(B):
        alpha[b], iters[b], ok = active_set(Kn[b], bid, p, tol, cap)
        if not ok:
            failed.append(b)
    if failed:
        warnings.warn(
            f"min-norm {method!r}: iteration cap {cap} reached in batch entries {failed[:8]}"
            f"{'...' if len(failed) > 8 else ''}; the weights are not certified optimal (see "
            "result.kkt). Raise max_iter.",
            MinNormConvergenceWarning,
            stacklevel=4,
        )
    return alpha, iters


def nnls_one(Kn: np.ndarray, max_iter: int | None) -> tuple[np.ndarray, int]:
    """Simplex QP via NNLS: with Kn = FᵀF, min_{β ≥ 0} ‖Fβ‖² + (1ᵀβ − 1)² has β* = t α*, t > 0.

    F comes from a pivoted Cholesky factorization (LAPACK dpstrf, stable for semidefinite
    matrices, truncated at the numerical rank), so singular Kn needs no ridge.
    """
    from scipy.optimize import nnls

    m = Kn.shape[0]
    c, piv, rank, _ = lapack.dpstrf(Kn, lower=0)
    Lt = np.zeros((max(rank, 1), m))
    Lt[:, piv - 1] = np.triu(c)[: max(rank, 1)]  # LtᵀLt = Kn up to rounding
    A = np.vstack([Lt, np.ones((1, m))])
    b = np.zeros(A.shape[0])
    b[-1] = 1.0
    cap = max_iter if max_iter is not None else 50 * m + 100
    try:
        beta, _ = nnls(A, b, maxiter=cap)
    except RuntimeError:  # scipy: "Maximum number of iterations reached"
        warnings.warn(
            f"min-norm 'nnls': scipy's nnls hit its iteration cap {cap}; returning the shortest "
            "vertex, not certified optimal (see result.kkt). Raise max_iter.",
            MinNormConvergenceWarning,
            stacklevel=4,
        )
        beta = np.zeros(m)
        beta[int(np.argmin(np.diag(Kn)))] = 1.0
    alpha = beta / beta.sum()
    # Polish: re-solve the affine min-norm problem on the support; keep it if it is better.
    S = np.flatnonzero(beta > 0)
    if len(S) > 1:
        y = affine_min(Kn, S, np.zeros(len(S), dtype=np.intp), 1)
        if (y > 0).all():
            cand = np.zeros(m)
            cand[S] = y
            zero = np.zeros(m, dtype=np.intp)
            if (
                kkt_gap(cand[None], Kn[None], zero, 1)[0]
                <= kkt_gap(alpha[None], Kn[None], zero, 1)[0]
            ):
                alpha = cand
    return alpha, len(S)
