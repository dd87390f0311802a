"""Iterative simplex-QP solvers, batched: pairwise Frank-Wolfe (numpy) and FISTA (torch)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["apg", "pairwise_frank_wolfe", "project_simplex"]


def pairwise_frank_wolfe(
    Kn: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray]:
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


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of the rows of v [B, m] onto the simplex (sort-based)."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1.0
    idx = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = ((u - css / idx) > 0).sum(-1, keepdim=True)  # ≥ 1 always
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp_min(0.0)


def apg(Kn: Tensor, tol: float, max_iter: int) -> tuple[Tensor, Tensor]:
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
        x_new = project_simplex(y - grad / L)
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
