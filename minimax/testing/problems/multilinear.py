"""g multilinear in δ on a box: maximized at the box's vertices."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
from torch import Tensor

from minimax.problem import FunctionProblem
from minimax.sets import Box
from minimax.testing.problems.base import (
    DTYPE,
    Nested,
    as_float64,
    call_repr,
    floats,
    tie_tolerance,
)
from minimax.testing.problems.known import KnownProblem

__all__ = ["multilinear_box"]


def _subset_bits(k: int) -> Tensor:
    """[2^k, k] bool: bit j of subset s."""
    s = torch.arange(2**k).unsqueeze(-1)
    return (s >> torch.arange(k)) & 1 == 1


# long: a family is one closure (objective, vertex enumeration, repr) over its numbers
def multilinear_box(
    w: Nested = (((0.0,), (1.0,), (0.0,), (0.0,)),),
    v: Nested = ((0.0, 0.0, 0.5, 0.25),),
    lower: float = -1.0,
    upper: float = 1.0,
    theta: Nested = (0.0,),
    flat: int | None = None,
) -> KnownProblem:
    """g(θ, δ; b) = Σ_{S ⊆ {1..k}} (⟨w_bS, θ⟩ + v_bS) Π_{j∈S} δ_j on the box δ ∈ [lower, upper]^k.

    g is multilinear in δ, so its max over the box is attained at vertices, and the θ-gradients
    on any maximal face are convex combinations of those at the face's vertices: the maximizer set
    is the set of maximal vertices (all 2^k are enumerated; k ≤ 3).

    ``flat=j`` forces ties: v_bS is replaced by −⟨w_bS, θ⟩ for every S ∋ j, so that at the given
    θ, g does not depend on δ_j and vertices pair up. Subsets S are indexed by bitmask (bit j ↔ j).

    Args: w ``[B][2^k][n]``, v ``[B][2^k]``, lower < upper, theta ``[n]``.
    """
    wt, vt, th = as_float64(w), as_float64(v), as_float64(theta)
    if wt.ndim != 3 or vt.shape != wt.shape[:2]:
        raise ValueError("multilinear_box needs w [B][2^k][n] and v [B][2^k]")
    bsz, ns, n = wt.shape
    k = round(math.log2(ns)) if ns else -1
    if ns < 2 or 2**k != ns or k > 3:
        raise ValueError(f"w needs 2^k subsets with 1 ≤ k ≤ 3, got {ns}")
    if th.shape != (n,):
        raise ValueError(f"theta must have {n} entries")
    if not float(lower) < float(upper):
        raise ValueError("lower must be < upper")
    bits = _subset_bits(k)
    if flat is not None:
        if not 0 <= flat < k:
            raise ValueError(f"flat must be in [0, {k})")
        vt = torch.where(bits[:, flat], -(wt @ th), vt)

    def values(theta_: Tensor, delta: Tensor, w_: Tensor, v_: Tensor) -> Tensor:
        mono = torch.where(bits, delta.unsqueeze(-2), torch.ones((), dtype=delta.dtype)).prod(-1)
        return ((w_ @ theta_ + v_) * mono).sum(-1)

    problem = FunctionProblem(
        lambda p, d, batch: values(p["theta"], d, batch[0], batch[1]),
        {"theta": th.clone()},
        Box(float(lower), float(upper)),
        event_shape=(k,),
        name=f"multilinear_{k}",
    )
    verts = torch.tensor(
        list(itertools.product((float(lower), float(upper)), repeat=k)), dtype=DTYPE
    )  # [V, k]

    def vertex_values(p: Mapping[str, Tensor]) -> Tensor:
        return values(p["theta"].to(DTYPE), verts.unsqueeze(1), wt, vt).T  # [B, V]

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        vals = vertex_values(p)
        tied = vals >= vals.max(-1, keepdim=True).values - tie_tolerance(vals, 1e-9)
        return [verts[row] for row in tied]

    vals0 = vertex_values({"theta": th})
    tied0 = vals0 >= vals0.max(-1, keepdim=True).values - tie_tolerance(vals0, 1e-9)
    rest = torch.where(tied0, -torch.inf, vals0).max(-1).values
    gap = float((vals0.max(-1).values - rest).min())
    return KnownProblem(
        name="multilinear_box",
        description=(
            f"g(θ, δ; b) = Σ_S (⟨w_bS, θ⟩ + v_bS) Π_(j∈S) δ_j, δ ∈ [{float(lower):g}, "
            f"{float(upper):g}]^{k} (θ ∈ R^{n}, B = {bsz})"
        ),
        problem=problem,
        batch=(wt, vt),
        per_example_loss=lambda p: vertex_values(p).max(-1).values,
        maximizers=maxs,
        call=call_repr(
            "multilinear_box",
            w=floats(w),
            v=floats(v),
            lower=float(lower),
            upper=float(upper),
            theta=floats(theta),
            flat=flat,
        ),
        info={"k": k, "dim": n, "B": bsz, "gap": gap, "tied": [int(r.sum()) for r in tied0]},
    )
