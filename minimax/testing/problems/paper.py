"""The DDi paper's toys as known problems: the counterexample, the bilinear toy, a max of pieces."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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
from minimax.toys import bilinear_maximizers, counterexample_phi, counterexample_value, hats

__all__ = ["bilinear", "counterexample", "max_of_pieces"]


def counterexample(x: Sequence[float] = (1.0, 0.0)) -> KnownProblem:
    """The DDi paper's counterexample: min_x max_{y∈[0,1]} f(x, y),

    f(x, y) = y(x₁² + (x₂+1)²) + (1−y)(x₁² + (x₂−1)²) − y(1−y),  φ(x) = x₁² + (|x₂| + 1)².

    At x₂ = 0 both y = 0 and y = 1 maximize (e.g. x = (1, 0): gradients (2, −2) and (2, 2)).
    """

    f = counterexample_value
    problem = FunctionProblem(
        lambda p, d, batch: f(p["x"], d[:, 0]),
        {"x": as_float64(x)},
        Box(0.0, 1.0),
        event_shape=(1,),
        name="counterexample",
    )

    def loss(p: Mapping[str, Tensor]) -> Tensor:
        return counterexample_phi(p["x"].to(DTYPE)).reshape(1)

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        z = p["x"].to(DTYPE)
        y0, y1 = f(z, torch.tensor(0.0, dtype=DTYPE)), f(z, torch.tensor(1.0, dtype=DTYPE))
        tol = 1e-9 * max(1.0, float(torch.maximum(y0, y1).abs()))
        top = float(torch.maximum(y0, y1))
        ys = [y for y, v in ((0.0, y0), (1.0, y1)) if float(v) >= top - tol]
        return [torch.tensor(ys, dtype=DTYPE).reshape(-1, 1)]

    return KnownProblem(
        name="counterexample",
        description="g(x, y) = y(x₁² + (x₂+1)²) + (1−y)(x₁² + (x₂−1)²) − y(1−y), y ∈ [0, 1]",
        problem=problem,
        batch=None,
        per_example_loss=loss,
        maximizers=maxs,
        call=call_repr("counterexample", x=floats(x)),
        info={"k": 2, "dim": 2, "B": 1, "gap": math.inf},
    )


def bilinear(theta: float = 0.0) -> KnownProblem:
    """g(θ, δ) = θ·δ on δ ∈ [−1, 1]: R(θ) = |θ|; at θ = 0 both ends tie and θ is stationary."""
    problem = FunctionProblem(
        lambda p, d, batch: p["theta"][0] * d[:, 0],
        {"theta": as_float64([theta])},
        Box(-1.0, 1.0),
        event_shape=(1,),
        name="bilinear",
    )

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        return [bilinear_maximizers(float(p["theta"][0]))]

    return KnownProblem(
        name="bilinear",
        description="g(θ, δ) = θ·δ, δ ∈ [−1, 1]; R(θ) = |θ|",
        problem=problem,
        batch=None,
        per_example_loss=lambda p: p["theta"].to(DTYPE).abs().reshape(1),
        maximizers=maxs,
        call=call_repr("bilinear", theta=float(theta)),
        info={"k": 2, "dim": 1, "B": 1, "gap": abs(float(theta)) if theta else math.inf},
    )


# long: a family is one closure (pieces, objective, tied maximizers, repr) over its numbers
def max_of_pieces(
    a: Nested = ((1.0, 1.0),),
    c: Nested = (((1.0,), (-1.0,)),),
    gaps: Nested = ((0.0, 0.0),),
    theta: Nested = (0.0,),
    *,
    pin: bool = True,
) -> KnownProblem:
    """A max of k quadratic pieces per example, tied at θ where ``gaps`` is 0.

    Pieces q_bj(θ') = ½ a_bj ‖θ' − c_bj‖² + e_bj with e_bj chosen so that q_bj(θ) = −gaps_bj: the
    pieces with gap 0 are the maximal, tied ones at the given θ. As a min-max problem δ ∈ [0, k−1]
    and g(θ', δ; b) = Σ_j hat_j(δ) q_bj(θ') (piecewise-linear interpolation between the integer
    nodes), so max_δ g = max_j q_bj and the maximizers are the nodes of the maximal pieces.

    Args: a ``[B][k]`` curvatures, c ``[B][k][n]`` centres, gaps ``[B][k]`` ≥ 0, theta ``[n]``
    the point θ; ``pin=False`` sets e_bj = −gaps_bj instead, so that pieces tie at θ only as far
    as the geometry and rounding make them (near ties, e.g. at a triangle's circumcenter).
    """
    at, ct, gt, th = as_float64(a), as_float64(c), as_float64(gaps), as_float64(theta)
    if at.ndim != 2 or ct.ndim != 3 or gt.shape != at.shape or ct.shape[:2] != at.shape:
        raise ValueError("max_of_pieces needs a [B][k], c [B][k][n], gaps [B][k]")
    if th.shape != ct.shape[2:]:
        raise ValueError(f"theta must have {ct.shape[2]} entries")
    if bool((gt < 0).any()):
        raise ValueError("gaps must be ≥ 0")
    bsz, k, n = ct.shape
    level = 0.5 * at * ((th - ct) ** 2).sum(-1)
    e = -level - gt if pin else -gt

    def pieces(theta_: Tensor) -> Tensor:
        return 0.5 * at * ((theta_ - ct) ** 2).sum(-1) + e  # [B, k]

    problem = FunctionProblem(
        lambda p, d, batch: (
            hats(d[:, 0], k) * (0.5 * batch[0] * ((p["theta"] - batch[1]) ** 2).sum(-1) + batch[2])
        ).sum(-1),
        {"theta": th.clone()},
        Box(0.0, float(k - 1)),
        event_shape=(1,),
        name=f"max_of_{k}_pieces",
    )

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        q = pieces(p["theta"].to(DTYPE))
        tied = q >= q.max(-1, keepdim=True).values - tie_tolerance(q, 1e-9)
        return [torch.nonzero(row).to(DTYPE).reshape(-1, 1) for row in tied]

    nontied = torch.where(gt > 0, gt, torch.inf)
    return KnownProblem(
        name="max_of_pieces",
        description=(
            "g(θ, δ; b) = Σ_j hat_j(δ) q_bj(θ), q_bj(θ) = ½ a_bj ‖θ − c_bj‖² + e_bj, "
            f"δ ∈ [0, {k - 1}] (k = {k} pieces, θ ∈ R^{n}, B = {bsz})"
        ),
        problem=problem,
        batch=(at, ct, e),
        per_example_loss=lambda p: pieces(p["theta"].to(DTYPE)).max(-1).values,
        maximizers=maxs,
        call=call_repr(
            "max_of_pieces",
            a=floats(a),
            c=floats(c),
            gaps=floats(gaps),
            theta=floats(theta),
            **({} if pin else {"pin": False}),
        ),
        info={
            "k": k,
            "dim": n,
            "B": bsz,
            "gap": float(nontied.min()) if k else math.inf,
            "tied": [int((row == 0).sum()) for row in gt],
        },
    )
