"""Finite max problems with known active sets: exact ties and ties up to rounding.

R(θ) = mean_b max_j q_bj(θ), written as a max over mixed strategies δ ∈ Δ_k (`minimax.Simplex`):
g(θ, δ; b) = Σ_j δ_j q_bj(θ), with quadratic pieces built around a point θ₀,

    q_bj(θ) = top_bj + ½ a_bj ⟨θ − θ₀, θ + θ₀ − 2 c_bj⟩   (= ½ a_bj ‖θ − c_bj‖² + const),

so that q_bj(θ₀) = top_bj exactly in floating point (the second term is exactly 0 at θ₀) and
∇q_bj(θ) = a_bj (θ − c_bj). The active set at θ₀ is the pieces whose ``top`` is the max:

- ``ties="exact"``: the tied pieces have bit-identical values;
- ``ties="rounding"``: their values differ by a few ulps (``ulps``): mathematically one piece
  wins, but by less than any step can see. The exact steepest-descent direction for any step
  longer than ~1e-15 is the min-norm point of the hull of all the near-tied pieces' gradients,
  so the oracle's active set holds them all (ties within 1e-9 relative);
- ``ties=None``: one piece is the max, the others at least ``min_gap`` below.

`finite_max` builds one problem from its numbers (its repr is that call), `conflicting_pieces` the
2-D instance where the single-gradient rule ascends, and `finite_max_problems` draws them with
hypothesis. All compute in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from hypothesis import strategies as st
from torch import Tensor

from minimax.problem import Batch, FunctionProblem
from minimax.sets.simplex import Simplex
from minimax.testing.problems import KnownProblem
from minimax.testing.problems.base import DTYPE, Nested, as_float64, call_repr, floats
from minimax.testing.strategies import numbers

__all__ = ["TIES", "conflicting_pieces", "finite_max", "finite_max_problems", "shift_ulps"]

Ties = Literal["exact", "rounding"] | None
TIES: tuple[Ties, ...] = ("exact", "rounding", None)

#: relative tolerance under which the oracle counts pieces as tied (as the other families do)
TIE_RTOL = 1e-9


def shift_ulps(value: float, ulps: int) -> float:
    """``value`` moved by ``ulps`` units in the last place (up for ulps > 0)."""
    toward = math.inf if ulps > 0 else -math.inf
    for _ in range(abs(int(ulps))):
        value = math.nextafter(value, toward)
    return value


def _pieces(theta: Tensor, batch: Batch) -> Tensor:
    """q_bj(θ) for every example and piece: θ [n] → [B, k]."""
    a, c, top, theta0 = batch
    return top + 0.5 * a * ((theta - theta0) * (theta + theta0 - 2 * c)).sum(-1)


def _objective(p: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
    return (delta * _pieces(p["theta"], batch)).sum(-1)


def _tie_info(top: Tensor) -> dict[str, Any]:
    """The active pieces of top [B, k] (within 1e-9 relative of the max), how many ulps apart
    their values are, and the gap to the best inactive piece."""
    best = top.max(-1, keepdim=True).values
    active = top >= best - TIE_RTOL * best.abs().clamp_min(1.0)
    spread = [
        round((float(r[m].max()) - float(r[m].min())) / math.ulp(float(r[m].max())))
        for r, m in zip(top, active)
    ]
    rest = torch.where(active, -torch.inf, top).max(-1).values
    return {
        "active": [torch.nonzero(m).flatten().tolist() for m in active],
        "spread_ulps": spread,
        "gap": float((best[:, 0] - rest).min()),
    }


def finite_max(
    a: Nested = ((1.0, 1.0),),
    c: Nested = (((1.0,), (-1.0,)),),
    top: Nested = ((1.0, 1.0),),
    theta: Nested = (0.0,),
) -> KnownProblem:
    """A max of k quadratic pieces per example over δ ∈ Δ_k, with q_bj(θ) = top_bj at θ = theta.

    Args: a ``[B][k]`` > 0 curvatures, c ``[B][k][n]`` centres, top ``[B][k]`` the pieces'
    values at θ (equal entries tie exactly; `shift_ulps` makes ties up to rounding), theta ``[n]``
    (θ₀, also the problem's initial parameters).

    ``info``: k, dim, B, ``active`` (per example the indices of the maximal pieces at θ₀, within
    1e-9 relative), ``spread_ulps`` (per example, how many ulps apart the active values are),
    ``gap`` (the smallest distance from an active piece to the best inactive one).
    """
    at, ct, tt, th = as_float64(a), as_float64(c), as_float64(top), as_float64(theta)
    if at.ndim != 2 or ct.ndim != 3 or tt.shape != at.shape or ct.shape[:2] != at.shape:
        raise ValueError("finite_max needs a [B][k], c [B][k][n], top [B][k]")
    if th.shape != ct.shape[2:]:
        raise ValueError(f"theta must have {ct.shape[2]} entries, got {tuple(th.shape)}")
    if not bool((at > 0).all()) or not bool(torch.isfinite(tt).all()):
        raise ValueError("finite_max needs curvatures a > 0 and finite tops")
    bsz, k, n = ct.shape
    batch = (at, ct, tt, th.clone())
    problem = FunctionProblem(
        _objective, {"theta": th.clone()}, Simplex(k), event_shape=(k,), name=f"finite_max_{k}"
    )

    def per_example(p: Mapping[str, Tensor]) -> Tensor:
        return _pieces(p["theta"].to(DTYPE), batch).max(-1).values

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        q = _pieces(p["theta"].to(DTYPE), batch)
        best = q.max(-1, keepdim=True).values
        tied = q >= best - TIE_RTOL * best.abs().clamp_min(1.0)
        eye = torch.eye(k, dtype=DTYPE)
        return [eye[row] for row in tied]

    return KnownProblem(
        name="finite_max",
        description=(
            "g(θ, δ; b) = Σ_j δ_j q_bj(θ), q_bj(θ) = top_bj + ½ a_bj ⟨θ − θ₀, θ + θ₀ − 2c_bj⟩, "
            f"δ ∈ Δ_{k} (θ ∈ R^{n}, B = {bsz})"
        ),
        problem=problem,
        batch=batch,
        per_example_loss=per_example,
        maximizers=maxs,
        call=call_repr(
            "finite_max", a=floats(a), c=floats(c), top=floats(top), theta=floats(theta)
        ),
        info={"k": k, "dim": n, "B": bsz, **_tie_info(tt)},
        tie_rtol=TIE_RTOL,
    )


def conflicting_pieces(ties: Ties = "exact", top: float = 1.0) -> KnownProblem:
    """Three pieces in θ ∈ R² at θ₀ = 0 where following one maximal gradient ascends.

    Pieces 0 and 1 are maximal with gradients (1, −2) and (1, 2) (inner product −3); piece 2 is
    1 below with gradient (−1, 0). The exact steepest descent is −(1, 0) (the min-norm point of
    the active hull); a step along either active gradient raises the other piece at slope 3/√5.
    ``ties="rounding"`` puts piece 1 one ulp above piece 0 (so a zero tolerance keeps only it);
    ``None`` puts it 0.5 above (no tie: the single gradient is then the steepest descent).
    With every piece in the hull (no tolerance), 0 is in the hull: a false stationarity.
    """
    second = {"exact": top, "rounding": shift_ulps(top, 1), None: top + 0.5}[ties]
    return finite_max(
        a=[[1.0, 1.0, 1.0]],
        c=[[[-1.0, 2.0], [-1.0, -2.0], [1.0, 0.0]]],
        top=[[top, second, top - 1.0]],
        theta=[0.0, 0.0],
    )


@st.composite
def finite_max_problems(
    draw: st.DrawFn,
    ties: Ties = "exact",
    *,
    max_pieces: int = 5,
    max_dim: int = 3,
    max_batch: int = 1,
    min_gap: float = 0.25,
    max_ulps: int = 4,
) -> KnownProblem:
    """`finite_max` problems: k ∈ [2, max_pieces] pieces, θ ∈ R^n (n ≤ max_dim), B ≤ max_batch.

    ``ties="exact"`` or ``"rounding"``: example 0 has t₀ ≥ 2 maximal pieces (others t_b ≥ 1),
    exactly equal, or up to rounding: one at the drawn level, the others shifted by at most
    ``max_ulps`` ulps either way, at least one of them by ≥ 1 (the level is ±[0.5, 2], away
    from 0, so that an ulp is a rounding-sized step); ``None``: every example has one maximal
    piece. The inactive pieces lie ``min_gap`` to 2 below. Which pieces tie is drawn (a
    permutation).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be 'exact', 'rounding' or None, got {ties!r}")
    k = draw(st.integers(2, max(2, max_pieces)), label="k")
    n = draw(st.integers(1, max_dim), label="dim")
    b = draw(st.integers(1, max(1, max_batch)), label="B")
    theta = [draw(numbers(-2, 2)) for _ in range(n)]
    a = [[draw(numbers(0.5, 2)) for _ in range(k)] for _ in range(b)]
    c = [[[draw(numbers(-2, 2)) for _ in range(n)] for _ in range(k)] for _ in range(b)]
    tops = []
    for j in range(b):
        level = draw(numbers(0.5, 2)) * draw(st.sampled_from([1.0, -1.0]))
        t = 1 if ties is None else draw(st.integers(2 if j == 0 else 1, k), label="tied")
        row = [level] * t + [level - draw(numbers(min_gap, 2)) for _ in range(k - t)]
        if ties == "rounding" and t >= 2:
            shifts = [0] + [draw(st.integers(-max_ulps, max_ulps)) for _ in range(t - 1)]
            if all(s == 0 for s in shifts):
                shifts[1] = draw(st.sampled_from([-1, 1]))
            row[:t] = [shift_ulps(level, s) for s in shifts]
        order = draw(st.permutations(range(k)), label="order")
        tops.append([row[i] for i in order])
    return finite_max(a, c, tops, theta)
