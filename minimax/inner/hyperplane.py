"""The smallest step onto a hyperplane inside a box, in L∞ or L2: FAB's projection.

Public: `hyperplane_projection` (exact, by sorting the breakpoints of a piecewise-linear
function; no iteration).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["hyperplane_projection"]


def hyperplane_projection(w: Tensor, r: Tensor, lo: Tensor, hi: Tensor, norm: str) -> Tensor:
    """The smallest step d (in L∞ or L2) with ``⟨w, d⟩ = r`` and ``lo ≤ d ≤ hi``, per row.

    ``w``, ``lo ≤ 0 ≤ hi`` [n, D] (bounds may be ±inf), ``r`` [n] → d [n, D]. Coordinate i moves
    by ``m_i = min(λ·s_i, cap_i)`` towards sign(w_i·r) (s_i = 1 for L∞, |w_i| for L2; cap_i the
    room the box leaves), λ the root of the piecewise-linear ``Σ |w_i| m_i = |r|``, found exactly
    by sorting the breakpoints (no iteration). When the box cannot reach the hyperplane, every
    coordinate goes to its cap (the box point nearest to it along w).
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    v = torch.where(r.unsqueeze(1) < 0, -w, w)  # ⟨v, d⟩ = |r|: d moves along sign(v)
    up = v > 0
    a = v.abs()
    active = a > 0
    cap = torch.where(up, hi, -lo).clamp_min(0)
    slope = a if norm == "l2" else active.to(a.dtype)
    breaks = torch.where(active, cap / torch.where(active, slope, 1), math.inf)
    order = breaks.argsort(dim=1)
    b_s, a_s, s_s = breaks.gather(1, order), a.gather(1, order), slope.gather(1, order)
    ac = torch.where(active, a * cap, 0).gather(1, order)  # Σ terms of saturated coordinates
    reached = ac.cumsum(1)  # Σ_{j≤k} a_j cap_j
    rising = (a_s * s_s).flip(1).cumsum(1).flip(1)  # Σ_{j≥k} a_j s_j
    after = torch.cat([rising[:, 1:], torch.zeros_like(rising[:, :1])], 1)  # Σ_{j>k}
    value = reached + torch.where(after > 0, b_s * after, 0)  # F at each breakpoint
    goal = r.abs().unsqueeze(1)
    k = (value < goal).sum(1, keepdim=True)  # the first breakpoint with F ≥ |r|
    feasible = k < w.shape[1]
    kk = k.clamp(max=w.shape[1] - 1)
    before = torch.cat([torch.zeros_like(reached[:, :1]), reached[:, :-1]], 1).gather(1, kk)
    denom = rising.gather(1, kk)
    lam = torch.where(denom > 0, (goal - before) / denom.clamp_min(1e-30), 0).clamp_min(0)
    m = torch.minimum(lam * slope, cap)
    m = torch.where(feasible, m, torch.where(active, cap, 0))
    return torch.where(active, torch.where(up, m, -m), 0)
