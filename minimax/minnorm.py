"""Minimum-norm point of a convex hull, from the Gram matrix alone.

Given ``gram`` K = G Gᵀ of m vectors g_1..g_m (K is m×m), solve the simplex QP

    α* = argmin_{α ∈ Δ_m} αᵀ K α,      d = Σ_i α*_i g_i,      ‖d‖² = α*ᵀ K α*

and its coupled variant over a product of simplices (one simplex per block of indices).
Optimality (KKT): (Kα)_i ≥ αᵀKα for every i, with equality where α_i > 0.

Every solver computes in float64 on the trace-normalized matrix Kn = K / (tr K / m) (the minimizer
is invariant to the scale of K) and returns a :class:`MinNormResult` that carries its KKT residual,
so a caller can check the answer. Methods:

- ``"wolfe"`` (default): Wolfe's finite min-norm-point algorithm on the Gram matrix (exact).
- ``"nnls"``: reduction to non-negative least squares via :func:`scipy.optimize.nnls` (exact,
  the reference).
- ``"frank-wolfe"``: pairwise Frank-Wolfe with exact line search (iterative).
- ``"apg"``: accelerated projected gradient, FISTA with sort-based simplex projection (iterative;
  100 iterations by default, the DDi paper's solver).
- ``"cvxpylayers"``: differentiable conic solve; gradients of the weights flow to ``gram``.

m = 1 and m = 2 are solved in closed form by every method.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.linalg import lapack
from torch import Tensor

__all__ = [
    "METHODS",
    "MinNormConvergenceWarning",
    "MinNormResult",
    "kkt_residual",
    "min_norm_point",
    "min_norm_product_weights",
    "min_norm_weights",
]

METHODS: tuple[str, ...] = ("wolfe", "nnls", "frank-wolfe", "apg", "cvxpylayers")

# Default stopping tolerances, in units of max_i Kn_ii (Kn: trace-normalized Gram matrix).
_DEFAULT_TOL = {
    "wolfe": 1e-15,  # an index is added to the corral when it violates KKT by more than this
    "nnls": 0.0,  # unused: scipy's nnls decides, then the support is polished
    "frank-wolfe": 1e-12,  # Frank-Wolfe gap  αᵀKnα − min_i (Knα)_i
    "apg": 0.0,  # same gap; 0 runs the whole iteration budget (the paper's fixed 100 steps)
    "cvxpylayers": 1e-10,  # the conic solver's eps
}
_DEFAULT_MAX_ITER = {"frank-wolfe": 1000, "apg": 100}
# Ridge added to Kn before the Cholesky factor that parametrizes the cvxpylayers problem (Cholesky
# needs positive definiteness; singular K is common). It moves the objective by at most 1e-10
# (αᵀ(ridge·I)α ≤ ridge); larger only if rounding made Kn slightly indefinite.
_CVX_RIDGE = 1e-10


class MinNormConvergenceWarning(RuntimeWarning):
    """An exact solver hit its iteration cap; the returned weights are the last iterate."""


@dataclass(frozen=True)
class MinNormResult:
    """Solution of a min-norm problem (leading batch dims ``...`` as in the input).

    Attributes:
        weights: ``[..., m]`` float64 weights (on the simplex, or on each block's simplex), on the
            input's device.
        sq_norm: ``[...]`` ‖d‖² = αᵀKα in the original scale of K (float64, clamped at 0).
        kkt: ``[...]`` KKT residual of ``weights`` relative to tr(K)/m; see :func:`kkt_residual`.
        iterations: ``[...]`` int64 iterations used (0 for the closed forms m ≤ 2 and for
            ``"cvxpylayers"``, whose solver does not report them).
        method: the solver that produced the result.
    """

    weights: Tensor
    sq_norm: Tensor
    kkt: Tensor
    iterations: Tensor
    method: str

    def __repr__(self) -> str:
        if self.weights.dim() == 1:
            w = ", ".join(f"{x:.6g}" for x in self.weights.detach().cpu().tolist())
            return (
                f"MinNormResult(method={self.method!r}, m={self.weights.shape[-1]}, "
                f"sq_norm={self.sq_norm.item():.6g}, kkt={self.kkt.item():.2e}, "
                f"iterations={int(self.iterations.item())}, weights=[{w}])"
            )
        worst = self.kkt.max().item() if self.kkt.numel() else 0.0
        return (
            f"MinNormResult(method={self.method!r}, batch={tuple(self.weights.shape[:-1])}, "
            f"m={self.weights.shape[-1]}, max_kkt={worst:.2e})"
        )


# --------------------------------------------------------------------------------------------
# Input checks and normalization
# --------------------------------------------------------------------------------------------


def _check_gram(gram: Tensor, what: str = "gram") -> tuple[np.ndarray, tuple[int, ...], int]:
    """Validate ``gram`` [..., m, m]; return its float64 symmetrized numpy copy [B, m, m]."""
    if not isinstance(gram, Tensor):
        raise ValueError(
            f"{what} must be a torch.Tensor of shape [..., m, m], got {type(gram).__name__}; "
            "wrap it with torch.as_tensor(...)."
        )
    if gram.is_complex():
        raise ValueError(f"{what} must be real; got dtype {gram.dtype}.")
    if gram.dim() < 2 or gram.shape[-1] != gram.shape[-2]:
        raise ValueError(
            f"{what} must have shape [..., m, m] (square in its last two dims); got "
            f"{tuple(gram.shape)}. Build it as G @ G.mT from vectors G of shape [..., m, n]."
        )
    m = gram.shape[-1]
    if m == 0:
        raise ValueError(f"{what} is empty (m = 0): the convex hull of no vectors has no point.")
    batch = tuple(gram.shape[:-2])
    in_eps = torch.finfo(gram.dtype).eps if gram.is_floating_point() else 0.0
    K = gram.detach().to(device="cpu", dtype=torch.float64).reshape(-1, m, m).numpy()
    if not np.isfinite(K).all():
        raise ValueError(f"{what} contains NaN or Inf; check the vectors it was built from.")
    if K.shape[0] == 0:
        return K.copy(), batch, m
    kmax = np.abs(K).max(axis=(1, 2))
    asym = np.abs(K - K.transpose(0, 2, 1)).max(axis=(1, 2))
    sym_tol = max(1e-8, 10.0 * in_eps)
    bad = asym > sym_tol * kmax
    if bad.any():
        b = int(np.argmax(bad))
        raise ValueError(
            f"{what} is not symmetric: max |K - Kᵀ| = {asym[b]:.3g} exceeds {sym_tol:g} × max |K| "
            f"(= {kmax[b]:.3g}) in batch entry {b}. Pass a Gram matrix G @ G.mT, or symmetrize "
            "it with (K + K.mT) / 2."
        )
    K = 0.5 * (K + K.transpose(0, 2, 1))
    trace = np.trace(K, axis1=1, axis2=2)
    psd_tol = max(1e-8, 10.0 * m * in_eps)
    # PSD up to psd_tol × trace: the Cholesky factor of K + psd_tol·trace·I must exist; a PSD
    # matrix with zero trace is zero.
    pos = trace > 0
    ok = not (~pos & (kmax > 0)).any()
    if ok and pos.any():
        Kp = K[pos] + (psd_tol * trace[pos])[:, None, None] * np.eye(m)
        if m <= 64:
            try:
                np.linalg.cholesky(Kp)
            except np.linalg.LinAlgError:
                ok = False
        else:  # torch's LAPACK: numpy's threaded one can stall next to torch's thread pool
            ok = bool((torch.linalg.cholesky_ex(torch.from_numpy(Kp)).info == 0).all())
    if not ok:
        lam = np.linalg.eigvalsh(K)
        b = int(np.argmin(lam[:, 0] + psd_tol * np.maximum(trace, 0.0)))
        raise ValueError(
            f"{what} is not positive semidefinite: smallest eigenvalue {lam[b, 0]:.3g} < "
            f"-{psd_tol:g} × trace (= {trace[b]:.3g}) in batch entry {b}. A Gram matrix "
            "G @ G.mT is PSD; compute it in float64 from the vectors themselves."
        )
    return K, batch, m


def _block_ids(block_sizes: Sequence[int] | None, m: int) -> tuple[np.ndarray, int]:
    """Block index of each coordinate [m] and the number of blocks."""
    if block_sizes is None:
        return np.zeros(m, dtype=np.intp), 1
    sizes = [int(s) for s in block_sizes]
    if any(s != b for s, b in zip(sizes, block_sizes)) or any(s <= 0 for s in sizes):
        raise ValueError(
            f"block_sizes must be positive integers; got {list(block_sizes)}. Each block is a "
            "contiguous range of indices with its own simplex constraint."
        )
    if sum(sizes) != m:
        raise ValueError(
            f"block_sizes sum to {sum(sizes)} but gram has m = {m} rows; the blocks must cover "
            "the indices 0..m-1 exactly (e.g. block_sizes=[10] * (m // 10))."
        )
    return np.repeat(np.arange(len(sizes)), sizes), len(sizes)


def _normalize(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kn = K / (tr K / m) [B, m, m] and the scale tr K / m [B]; zero-trace entries stay 0."""
    m = K.shape[-1]
    scale = np.trace(K, axis1=1, axis2=2) / m
    safe = np.where(scale > 0, scale, 1.0)
    return K / safe[:, None, None], scale


def _uniform(bid: np.ndarray, p: int) -> np.ndarray:
    """Uniform weights on each block's simplex [m]."""
    counts = np.bincount(bid, minlength=p).astype(np.float64)
    return 1.0 / counts[bid]


def _kkt_np(alpha: np.ndarray, Kn: np.ndarray, bid: np.ndarray, p: int) -> np.ndarray:
    """KKT residual [B] of weights alpha [B, m] for the normalized Gram matrices Kn [B, m, m]."""
    if alpha.shape[0] == 0:
        return np.zeros(0)
    E = np.zeros((alpha.shape[1], p))
    E[np.arange(alpha.shape[1]), bid] = 1.0
    r = np.einsum("bij,bj->bi", Kn, alpha)
    wsum = alpha @ E
    lam = ((alpha * r) @ E) / np.where(wsum != 0, wsum, 1.0)
    gap = r - lam @ E.T
    dual = np.maximum(-gap, 0.0).max(axis=1)
    comp = (np.maximum(alpha, 0.0) * np.abs(gap)).max(axis=1)
    infeas = np.maximum(np.maximum(-alpha, 0.0).max(axis=1), np.abs(wsum - 1.0).max(axis=1))
    return np.maximum(np.maximum(dual, comp), infeas)


# --------------------------------------------------------------------------------------------
# Exact solvers (numpy float64, one problem at a time)
# --------------------------------------------------------------------------------------------


def _closed_form(Kn: np.ndarray) -> np.ndarray:
    """Weights for m ≤ 2 [m] from Kn [m, m]."""
    if Kn.shape[0] == 1:
        return np.ones(1)
    den = Kn[0, 0] + Kn[1, 1] - 2.0 * Kn[0, 1]  # ‖g_1 − g_2‖² ≥ 0
    a = 0.5 if den <= 0 else min(max((Kn[1, 1] - Kn[0, 1]) / den, 0.0), 1.0)
    return np.array([a, 1.0 - a])


def _affine_min(Kn: np.ndarray, Sa: np.ndarray, bS: np.ndarray, p: int) -> np.ndarray:
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


def _active_set(
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
    if p == 1:
        Sa = np.array([int(np.argmin(diag))])
    else:  # the shortest vector of each block
        order = np.lexsort((diag, bid))
        starts = np.concatenate(([0], np.cumsum(np.bincount(bid, minlength=p))[:-1]))
        Sa = order[starts]
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
            y = _affine_min(Kn, Sa, bS, p)
            if (y > 0).all():
                x = y
                capped = False
                break
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
        if capped:
            break
    alpha = np.zeros(m)
    alpha[Sa] = x
    return alpha, it, converged


def _wolfe_batch(
    Kn: np.ndarray, bid: np.ndarray, p: int, tol: float, max_iter: int | None, method: str
) -> tuple[np.ndarray, np.ndarray]:
    B, m = Kn.shape[0], Kn.shape[-1]
    cap = max_iter if max_iter is not None else 25 * m + 100
    alpha = np.empty((B, m))
    iters = np.zeros(B, dtype=np.int64)
    failed = []
    for b in range(B):
        alpha[b], iters[b], ok = _active_set(Kn[b], bid, p, tol, cap)
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


def _nnls_one(Kn: np.ndarray, max_iter: int | None) -> tuple[np.ndarray, int]:
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
        y = _affine_min(Kn, S, np.zeros(len(S), dtype=np.intp), 1)
        if (y > 0).all():
            cand = np.zeros(m)
            cand[S] = y
            zero = np.zeros(m, dtype=np.intp)
            if (
                _kkt_np(cand[None], Kn[None], zero, 1)[0]
                <= _kkt_np(alpha[None], Kn[None], zero, 1)[0]
            ):
                alpha = cand
    return alpha, len(S)


# --------------------------------------------------------------------------------------------
# Iterative solvers (batched)
# --------------------------------------------------------------------------------------------


def _pairwise_fw(Kn: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise Frank-Wolfe with exact line search, vectorized over the batch. Kn [B, m, m]."""
    B, m = Kn.shape[0], Kn.shape[-1]
    ar = np.arange(B)
    diag = Kn.diagonal(axis1=1, axis2=2)
    thr = tol * diag.max(axis=1)
    start = diag.argmin(axis=1)
    alpha = np.zeros((B, m))
    alpha[ar, start] = 1.0
    r = Kn[ar, :, start].copy()  # r = Kn α
    iters = np.zeros(B, dtype=np.int64)
    active = np.ones(B, dtype=bool)
    for k in range(max_iter):
        if k % 50 == 49:  # refresh the incrementally updated gradient
            r = np.einsum("bij,bj->bi", Kn, alpha)
        v = (alpha * r).sum(axis=1)
        s = r.argmin(axis=1)
        rs = r[ar, s]
        active &= (v - rs) > thr
        if not active.any():
            break
        a = np.where(alpha > 0, r, -np.inf).argmax(axis=1)
        ra = r[ar, a]
        curv = Kn[ar, s, s] + Kn[ar, a, a] - 2.0 * Kn[ar, s, a]
        num = ra - rs
        step = np.where(curv > 0, num / np.where(curv > 0, curv, 1.0), np.inf)
        aa = alpha[ar, a]
        full = step >= aa
        gamma = np.where(active, np.minimum(step, aa), 0.0)
        alpha[ar, a] = np.where(active & full, 0.0, aa - gamma)
        alpha[ar, s] += gamma
        r += gamma[:, None] * (Kn[ar, :, s] - Kn[ar, :, a])
        iters += active
    return alpha, iters


def _project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of the rows of v [B, m] onto the simplex (sort-based)."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1.0
    idx = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = ((u - css / idx) > 0).sum(-1, keepdim=True)  # ≥ 1 always
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp_min(0.0)


def _apg(Kn: Tensor, tol: float, max_iter: int) -> tuple[Tensor, Tensor]:
    """FISTA on ½αᵀKnα over the simplex, step 1/λ_max(Kn), from the uniform point. Kn [B, m, m]."""
    B, m = Kn.shape[0], Kn.shape[-1]
    L = torch.linalg.eigvalsh(Kn)[..., -1].clamp_min(1e-300).unsqueeze(-1)
    thr = tol * Kn.diagonal(dim1=-2, dim2=-1).amax(-1)
    x = torch.full((B, m), 1.0 / m, dtype=Kn.dtype, device=Kn.device)
    y = x
    t = 1.0
    iters = torch.zeros(B, dtype=torch.int64, device=Kn.device)
    done = torch.zeros(B, dtype=torch.bool, device=Kn.device)
    for _ in range(max_iter):
        grad = (Kn @ y.unsqueeze(-1)).squeeze(-1)
        x_new = _project_simplex(y - grad / L)
        x_new = torch.where(done.unsqueeze(-1), x, x_new)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        y = x_new + ((t - 1.0) / t_new) * (x_new - x)
        x, t = x_new, t_new
        iters += (~done).long()
        if tol > 0:
            r = (Kn @ x.unsqueeze(-1)).squeeze(-1)
            done |= ((x * r).sum(-1) - r.amin(-1)) <= thr
            if bool(done.all()):
                break
    return x, iters


_LAYERS: dict[int, Any] = {}


def _cvx_layer(m: int) -> Any:
    """The cached cvxpylayers problem  min ‖Pα‖²  s.t.  α ≥ 0, 1ᵀα = 1  (P = Lᵀ, Kn = L Lᵀ)."""
    if m not in _LAYERS:
        try:
            import cvxpy as cp
            from cvxpylayers.torch import CvxpyLayer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "method='cvxpylayers' needs cvxpy and cvxpylayers: pip install 'minimax[diff]'"
            ) from exc
        a = cp.Variable(m)
        P = cp.Parameter((m, m))
        prob = cp.Problem(cp.Minimize(cp.sum_squares(P @ a)), [a >= 0, cp.sum(a) == 1])
        _LAYERS[m] = CvxpyLayer(prob, parameters=[P], variables=[a])
    return _LAYERS[m]


def _cvx_weights(gram: Tensor, tol: float) -> Tensor:
    """Differentiable weights [B, m] for gram [..., m, m] (validated) through cvxpylayers."""
    m = gram.shape[-1]
    K = gram.to(torch.float64).reshape(-1, m, m)
    K = 0.5 * (K + K.mT)
    scale = K.diagonal(dim1=-2, dim2=-1).sum(-1) / m
    eye = torch.eye(m, dtype=K.dtype, device=K.device)
    pos = (scale > 0)[:, None, None]
    Kn = torch.where(pos, K / torch.where(pos, scale[:, None, None], 1.0), eye)
    if m <= 2:
        if m == 1:
            return torch.ones_like(Kn[..., 0])
        den = Kn[:, 0, 0] + Kn[:, 1, 1] - 2.0 * Kn[:, 0, 1]
        safe = torch.where(den > 0, den, torch.ones_like(den))
        a = torch.where(den > 0, ((Kn[:, 1, 1] - Kn[:, 0, 1]) / safe).clamp(0.0, 1.0), 0.5)
        return torch.stack([a, 1.0 - a], dim=-1)
    for ridge in (_CVX_RIDGE, 1e-8 * m, 1e-6 * m):  # validation admits λ_min ≥ −1e-8·tr(Kn)
        L, info = torch.linalg.cholesky_ex(Kn + ridge * eye)
        if not bool((info != 0).any()):
            break
    layer = _cvx_layer(m)
    # Silence cvxpylayers' numpy-2 notices and SCS's frequent "Solved/Inaccurate" at eps 1e-10:
    # the result's KKT residual reports the accuracy actually reached.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Solved/Inaccurate")
        (w,) = layer(L.mT.contiguous().cpu(), solver_args={"eps": tol, "max_iters": 100_000})
    w = w.to(K.device).clamp_min(0.0)
    return w / w.sum(-1, keepdim=True)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _finish(
    alpha: np.ndarray | Tensor,
    K: np.ndarray,
    Kn: np.ndarray,
    bid: np.ndarray,
    p: int,
    iters: np.ndarray,
    batch: tuple[int, ...],
    device: torch.device,
    method: str,
    gram: Tensor | None = None,
) -> MinNormResult:
    m = K.shape[-1]
    a_np = alpha.detach().cpu().numpy() if isinstance(alpha, Tensor) else alpha
    kkt = _kkt_np(a_np, Kn, bid, p)
    if isinstance(alpha, Tensor) and gram is not None:  # differentiable path
        Kt = gram.to(torch.float64).reshape(-1, m, m)
        Kt = 0.5 * (Kt + Kt.mT)
        weights = alpha.reshape(*batch, m)
        sq = torch.einsum("bi,bij,bj->b", alpha, Kt, alpha).clamp_min(0.0).reshape(batch)
    else:
        sq_np = np.maximum(np.einsum("bi,bij,bj->b", a_np, K, a_np), 0.0)
        weights = torch.from_numpy(np.ascontiguousarray(a_np)).reshape(*batch, m).to(device)
        sq = torch.from_numpy(sq_np).reshape(batch).to(device)
    return MinNormResult(
        weights=weights,
        sq_norm=sq,
        kkt=torch.from_numpy(kkt).reshape(batch).to(device),
        iterations=torch.from_numpy(np.asarray(iters, dtype=np.int64)).reshape(batch).to(device),
        method=method,
    )


def _check_tol(tol: float | None, max_iter: int | None, method: str) -> tuple[float, int | None]:
    t = _DEFAULT_TOL[method] if tol is None else float(tol)
    if not t >= 0 or not math.isfinite(t):
        raise ValueError(f"tol must be a finite number ≥ 0; got {tol}.")
    if max_iter is not None and (int(max_iter) != max_iter or max_iter < 0):
        raise ValueError(f"max_iter must be a non-negative integer or None; got {max_iter}.")
    return t, (None if max_iter is None else int(max_iter))


def min_norm_weights(
    gram: Tensor,
    method: str = "wolfe",
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> MinNormResult:
    """Weights of the minimum-norm point of conv{g_1..g_m}, given ``gram`` K = G Gᵀ.

    Solves α* = argmin_{α ∈ Δ_m} αᵀKα for each matrix of ``gram`` [..., m, m] (any real dtype;
    computed in float64 on Kn = K / (tr K / m)). Small asymmetries are symmetrized away.

    Args:
        gram: ``[..., m, m]`` symmetric positive semidefinite Gram matrices.
        method: one of ``"wolfe"`` (exact, default), ``"nnls"`` (exact, reference),
            ``"frank-wolfe"``, ``"apg"`` (iterative), ``"cvxpylayers"`` (differentiable).
        tol: method-specific stopping tolerance in units of max_i Kn_ii (``None``: the method's
            default; for ``"cvxpylayers"`` the conic solver's eps).
        max_iter: iteration cap (``None``: 25m + 100 linear solves for ``"wolfe"``, 50m + 100
            for scipy's nnls, 1000 for ``"frank-wolfe"``, 100 for ``"apg"``). The exact methods
            warn with :class:`MinNormConvergenceWarning` when they hit it.

    Returns:
        :class:`MinNormResult` with weights ``[..., m]`` float64 on ``gram``'s device.
        ``iterations`` counts linear solves (``"wolfe"``), steps (``"frank-wolfe"``, ``"apg"``),
        or the support size (``"nnls"``: scipy does not report its count). Only
        ``"cvxpylayers"`` keeps the autograd graph; the other methods return detached tensors.

    Raises:
        ValueError: malformed ``gram`` (shape, empty, NaN/Inf, asymmetric, indefinite) or an
            unknown ``method``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    t, max_iter = _check_tol(tol, max_iter, method)
    K, batch, m = _check_gram(gram)
    Kn, scale = _normalize(K)
    B = K.shape[0]
    bid = np.zeros(m, dtype=np.intp)
    device = gram.device
    iters = np.zeros(B, dtype=np.int64)
    zero = scale <= 0
    if method == "cvxpylayers" and B > 0:
        w = _cvx_weights(gram, t)
        return _finish(w, K, Kn, bid, 1, iters, batch, device, method, gram=gram)
    alpha = np.empty((B, m))
    if m <= 2 or B == 0:
        for b in range(B):
            alpha[b] = _closed_form(Kn[b])
    elif method == "wolfe":
        alpha, iters = _wolfe_batch(Kn, bid, 1, t, max_iter, method)
    elif method == "nnls":
        for b in range(B):
            alpha[b], iters[b] = (
                _nnls_one(Kn[b], max_iter) if not zero[b] else (np.full(m, 1 / m), 0)
            )
    elif method == "frank-wolfe":
        cap = _DEFAULT_MAX_ITER[method] if max_iter is None else max_iter
        alpha, iters = _pairwise_fw(Kn, t, cap)
    else:  # apg
        cap = _DEFAULT_MAX_ITER[method] if max_iter is None else max_iter
        a_t, it_t = _apg(torch.from_numpy(Kn).to(device), t, cap)
        alpha, iters = a_t.cpu().numpy(), it_t.cpu().numpy()
    alpha[zero] = 1.0 / m  # all vectors zero: every point of the simplex is optimal
    iters[zero] = 0
    return _finish(alpha, K, Kn, bid, 1, iters, batch, device, method)


def min_norm_point(
    vectors: Tensor, method: str = "wolfe", **kw: Any
) -> tuple[Tensor, MinNormResult]:
    """Minimum-norm point d of conv{vectors} and its :class:`MinNormResult`.

    Args:
        vectors: ``[..., m, n]`` the m vectors g_i (rows) of each problem.
        method, **kw: as in :func:`min_norm_weights`.

    Returns:
        ``(d, result)`` with d ``[..., n]`` in ``vectors``' dtype (computed in float64) and
        ``result.weights`` ``[..., m]``. With ``method="cvxpylayers"`` d is differentiable.
    """
    if not isinstance(vectors, Tensor) or vectors.dim() < 2:
        raise ValueError(
            "vectors must be a torch.Tensor of shape [..., m, n] (m vectors of dimension n); got "
            f"{tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__}."
        )
    if vectors.shape[-2] == 0:
        raise ValueError("vectors is empty (m = 0): the convex hull of no vectors has no point.")
    V = vectors.to(torch.float64)
    result = min_norm_weights(V @ V.mT, method, **kw)
    d = (result.weights.unsqueeze(-2) @ V).squeeze(-2)
    return d.to(vectors.dtype if vectors.is_floating_point() else torch.float64), result


def min_norm_product_weights(
    gram: Tensor,
    block_sizes: Sequence[int],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
) -> MinNormResult:
    """Min-norm point of a Minkowski sum of hulls: minimize αᵀKα over a product of simplices.

    The indices 0..m-1 are split into contiguous blocks of sizes ``block_sizes``; the weights of
    each block lie on their own simplex, and d = Σ_j Σ_{i∈j} α_i g_i. Solved exactly by Wolfe's
    active-set algorithm generalized to the product (a corral with ≥ 1 index per block). KKT:
    (Kα)_i ≥ λ_j for i in block j with equality where α_i > 0.

    Args:
        gram: ``[..., m, m]`` Gram matrices.
        block_sizes: positive block sizes summing to m.
        tol, max_iter: as for ``method="wolfe"`` in :func:`min_norm_weights`.

    Returns:
        :class:`MinNormResult` with flat weights ``[..., m]`` (split them by ``block_sizes``).
    """
    t, max_iter = _check_tol(tol, max_iter, "wolfe")
    K, batch, m = _check_gram(gram)
    bid, p = _block_ids(block_sizes, m)
    Kn, scale = _normalize(K)
    B = K.shape[0]
    iters = np.zeros(B, dtype=np.int64)
    if p == m or B == 0:
        alpha = np.ones((B, m))
    else:
        alpha, iters = _wolfe_batch(Kn, bid, p, t, max_iter, "product")
    zero = scale <= 0
    alpha[zero] = _uniform(bid, p)
    iters[zero] = 0
    return _finish(alpha, K, Kn, bid, p, iters, batch, gram.device, "product-wolfe")


def kkt_residual(weights: Tensor, gram: Tensor, block_sizes: Sequence[int] | None = None) -> Tensor:
    """KKT residual of ``weights`` [..., m] for the min-norm problem of ``gram`` [..., m, m].

    With Kn = K / (tr K / m), r = Kn α and, for each block j (one block without ``block_sizes``),
    λ_j = Σ_{i∈j} α_i r_i / Σ_{i∈j} α_i (= αᵀKnα for the simplex problem):

        residual = max( max_i (λ_j(i) − r_i)_+ ,          dual feasibility: no vertex is better
                        max_i (α_i)_+ · |r_i − λ_j(i)| ,   complementarity on the support
                        max_i (−α_i)_+ ,                   nonnegativity
                        max_j |Σ_{i∈j} α_i − 1| )          each block on its simplex

    It is 0 exactly at a minimizer, is measured in units of the mean squared norm tr(K)/m, and
    bounds the objective gap: αᵀKnα − min ≤ 2 · residual (simplex case, feasible α).
    All-zero ``gram`` (trace 0) gives the infeasibility terms only. Returns ``[...]`` float64.
    """
    K, batch, m = _check_gram(gram)
    bid, p = _block_ids(block_sizes, m)
    if not isinstance(weights, Tensor) or weights.shape[-1] != m:
        raise ValueError(
            f"weights must be a tensor [..., m] with m = {m} (gram's size); got "
            f"{tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__}."
        )
    w = weights.detach().to("cpu", torch.float64)
    shape = torch.broadcast_shapes(tuple(w.shape[:-1]), batch)
    a = w.expand(*shape, m).reshape(-1, m).numpy()
    Kb = np.broadcast_to(K.reshape(*batch, m, m), (*shape, m, m)).reshape(-1, m, m)
    if not np.isfinite(a).all():
        raise ValueError("weights contain NaN or Inf.")
    Kn, _ = _normalize(Kb)
    return torch.from_numpy(_kkt_np(a, Kn, bid, p)).reshape(shape).to(gram.device)
