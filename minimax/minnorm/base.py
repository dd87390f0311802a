"""The simplex QP's shared pieces: the result type, input checks, trace normalization, KKT.

Every solver computes in float64 on the trace-normalized matrix Kn = K / (tr K / m) and returns a
`MinNormResult` that carries its KKT residual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from minimax import checks

__all__ = [
    "MinNormConvergenceWarning",
    "MinNormResult",
    "block_ids",
    "check_gram",
    "check_tol",
    "finish",
    "kkt_gap",
    "kkt_residual",
    "normalize",
    "uniform_weights",
    "unit_scale",
]


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


def check_gram(
    gram: Tensor, what: str = "gram", precision: torch.dtype | None = None
) -> tuple[np.ndarray, tuple[int, ...], int]:
    """Validate ``gram`` [..., m, m]; return its float64 numpy copy [B, m, m].

    The symmetry and PSD tolerances follow the precision the entries were computed in:
    ``precision`` (e.g. float32 for a Gram matrix formed layer by layer from a float32 model and
    stored in float64), else ``gram``'s dtype."""
    _check_form(gram, what)
    m = gram.shape[-1]
    batch = tuple(gram.shape[:-2])
    if precision is not None and not (
        isinstance(precision, torch.dtype) and precision.is_floating_point
    ):
        raise TypeError(f"precision must be a floating-point torch.dtype, got {precision!r}")
    formed = precision or (gram.dtype if gram.is_floating_point() else None)
    info = torch.finfo(formed) if formed is not None else torch.finfo(torch.float64)
    in_eps = info.eps if formed is not None else 0.0
    K = gram.detach().to(device="cpu", dtype=torch.float64).reshape(-1, m, m).numpy()
    if not np.isfinite(K).all():
        raise ValueError(f"{what} contains NaN or Inf; check the vectors it was built from.")
    if K.shape[0] == 0:
        return K.copy(), batch, m
    # Every check runs on K scaled exactly (a power of two) to max|K| in [1/2, 1), before any
    # symmetrizing, so entries near 1e308 or subnormal ones are judged as at unit scale. Below the
    # input dtype's smallest normal number the data have lost relative precision: the tolerances
    # then treat the scale as that number (an absolute floor in the data's own rounding units).
    Ku, e = unit_scale(K)
    floor = np.ldexp(info.tiny, -e)  # the dtype's smallest normal, in the units of Ku
    asym = np.abs(Ku - Ku.transpose(0, 2, 1)).max(axis=(1, 2))
    sym_tol = max(1e-8, 10.0 * in_eps)
    bad = asym > sym_tol * np.maximum(1.0, floor)
    if bad.any():
        b = int(np.argmax(bad))
        raise ValueError(
            f"{what} is not symmetric: max |K - Kᵀ| is {asym[b] / np.abs(Ku[b]).max():.3g} × "
            f"max |K|, above the rounding allowance {sym_tol:g} × max |K|, in batch entry {b}. "
            "Pass a Gram matrix G @ G.mT, or symmetrize it with "
            "(K + K.mT) / 2."
        )
    # symmetrized exactly up to one rounding: Ku is at unit scale
    _check_psd(0.5 * (Ku + Ku.transpose(0, 2, 1)), floor, in_eps, what)
    return K, batch, m


def _check_psd(Ks: np.ndarray, floor: np.ndarray, in_eps: float, what: str) -> None:
    """Refuse a symmetric Ks [B, m, m] at unit scale that is not PSD up to the rounding
    allowance of its entries' dtype (unit roundoff ``in_eps``; ``floor``: its smallest normal
    number in Ks's units)."""
    m = Ks.shape[-1]
    trace = np.trace(Ks, axis1=1, axis2=2)
    psd_tol = max(1e-8, 10.0 * m * in_eps)
    # PSD up to psd_tol × max(trace, m × floor): the Cholesky factor of K + that·I must exist.
    shift = psd_tol * np.maximum(trace, m * floor)
    Kp = Ks + shift[:, None, None] * np.eye(m)
    if m <= 64:
        try:
            np.linalg.cholesky(Kp)
            ok = True
        except np.linalg.LinAlgError:
            ok = False
    else:  # torch's LAPACK: numpy's threaded one can stall next to torch's thread pool
        ok = bool((torch.linalg.cholesky_ex(torch.from_numpy(Kp)).info == 0).all())
    if not ok:
        lam = np.linalg.eigvalsh(Ks)
        b = int(np.argmin(lam[:, 0] + shift))
        raise ValueError(
            f"{what} is not positive semidefinite: its smallest eigenvalue is "
            f"{lam[b, 0] / max(trace[b], m * floor[b]):.3g} × its trace, below the rounding "
            f"allowance -{psd_tol:g} × trace, in batch entry {b}. A Gram matrix G @ G.mT is PSD; "
            "compute it in float64 from the vectors themselves."
        )


def _check_form(gram: object, what: str) -> None:
    """Refuse anything but a real tensor [..., m, m] with m ≥ 1."""
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
    if gram.shape[-1] == 0:
        raise ValueError(f"{what} is empty (m = 0): the convex hull of no vectors has no point.")


def block_ids(block_sizes: Sequence[int] | None, m: int) -> tuple[np.ndarray, int]:
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


def unit_scale(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K · 2^-e, e) [B, m, m], [B]: K scaled exactly, by a power of two, to max|K| in [1/2, 1).

    Exact for every finite input, subnormal entries included (an all-zero K keeps e = 0)."""
    kmax = np.abs(K).max(axis=(1, 2)) if K.shape[0] else np.zeros(0)
    e = np.where(kmax > 0, np.frexp(kmax)[1], 0)
    return np.ldexp(K, -e[:, None, None]), e


def normalize(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kn = K / (tr K / m) [B, m, m] and the scale tr K / m [B]; zero-trace entries stay 0.

    K is first scaled exactly to unit size (:func:`unit_scale`), then symmetrized, then divided by
    its mean diagonal, so a trace that would overflow and subnormal entries give the right Kn
    (one rounding per entry); the scale itself may be inf (or the smallest subnormal when it
    would underflow: it is positive exactly when the trace is)."""
    m = K.shape[-1]
    if K.shape[0] == 0:
        return K.copy(), np.zeros(0)
    Ku, e = unit_scale(K)
    Ks = 0.5 * (Ku + Ku.transpose(0, 2, 1))
    t = np.trace(Ks, axis1=1, axis2=2) / m
    safe = np.where(t > 0, t, 1.0)
    with np.errstate(over="ignore"):
        scale = np.where(t > 0, np.maximum(np.ldexp(t, e), 5e-324), 0.0)
    return Ks / safe[:, None, None], scale


def uniform_weights(bid: np.ndarray, p: int) -> np.ndarray:
    """Uniform weights on each block's simplex [m]."""
    counts = np.bincount(bid, minlength=p).astype(np.float64)
    return 1.0 / counts[bid]


def kkt_gap(alpha: np.ndarray, Kn: np.ndarray, bid: np.ndarray, p: int) -> np.ndarray:
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


def finish(
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
    kkt = kkt_gap(a_np, Kn, bid, p)
    if isinstance(alpha, Tensor) and gram is not None:  # differentiable path
        Kt = gram.to(torch.float64).reshape(-1, m, m)
        from minimax.minnorm.differentiable import pow2_scale

        e = torch.frexp(Kt.detach().abs().amax(dim=(-2, -1))).exponent  # unit scale, exactly
        Kt = pow2_scale(Kt, -e)
        Kt = 0.5 * (Kt + Kt.mT)
        weights = alpha.reshape(*batch, m)
        sq = torch.einsum("bi,bij,bj->b", alpha, Kt, alpha).clamp_min(0.0)
        sq = pow2_scale(sq[:, None, None], e)[:, 0, 0].reshape(batch)
    else:
        Ku, ex = unit_scale(K)  # αᵀKα at unit scale, then scaled back: no under- or overflow
        with np.errstate(over="ignore"):
            sq_np = np.ldexp(np.maximum(np.einsum("bi,bij,bj->b", a_np, Ku, a_np), 0.0), ex)
        weights = torch.from_numpy(np.ascontiguousarray(a_np)).reshape(*batch, m).to(device)
        sq = torch.from_numpy(sq_np).reshape(batch).to(device)
    return MinNormResult(
        weights=weights,
        sq_norm=sq,
        kkt=torch.from_numpy(kkt).reshape(batch).to(device),
        iterations=torch.from_numpy(np.asarray(iters, dtype=np.int64)).reshape(batch).to(device),
        method=method,
    )


def check_tol(
    tol: float | None, max_iter: int | None, default_tol: float
) -> tuple[float, int | None]:
    """``tol`` (``default_tol`` when None) and ``max_iter`` checked: finite ≥ 0, integer ≥ 0."""
    t = default_tol if tol is None else checks.real_number("tol", tol, nonnegative=True)
    if max_iter is not None:
        max_iter = checks.integer("max_iter", max_iter, minimum=0)
    return t, max_iter


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
    K, batch, m = check_gram(gram)
    bid, p = block_ids(block_sizes, m)
    if isinstance(weights, Tensor) and (weights.is_complex() or weights.dtype == torch.bool):
        raise TypeError(f"weights must be real, got dtype {weights.dtype}")
    if not isinstance(weights, Tensor) or weights.ndim == 0 or weights.shape[-1] != m:
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
    Kn, _ = normalize(Kb)
    with np.errstate(over="ignore", invalid="ignore"):  # weights far off the simplex
        res = kkt_gap(a, Kn, bid, p)
    res = np.where(np.isnan(res) | (res > np.finfo(np.float64).max), np.finfo(np.float64).max, res)
    return torch.from_numpy(res).reshape(shape).to(gram.device)
