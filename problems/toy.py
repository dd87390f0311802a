"""The paper's toy problems, each with its exact robust loss and maximizer set.

Every toy has ``problem`` (a minimax `Problem`), ``batch``, ``params()`` (θ, leaves that require
grad), ``robust_loss(params)`` (the exact R(θ), a float64 scalar) and ``maximizers(params)`` (per
example, a tensor [k, *event] of maximizers whose parameter gradients span the Danskin set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

import minimax as mm
from minimax.toys import bce_per_example, elu_network

__all__ = [
    "Bilinear",
    "Counterexample",
    "ELUNetwork",
    "MaxOfQuadratics",
    "Toy",
]


class Toy:
    """Common shape of the toy problems."""

    problem: mm.extend.Problem
    batch: object

    def params(self) -> dict[str, Tensor]:
        return self.problem.parameters()

    def robust_loss(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        raise NotImplementedError

    def maximizers(self, params: Mapping[str, Tensor] | None = None) -> list[Tensor]:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------
# The counterexample of DESIGN.md
# ------------------------------------------------------------------------------------------------


counterexample_value = mm.toys.counterexample_value
counterexample_phi = mm.toys.counterexample_phi


class Counterexample(Toy):
    """min_x max_{y∈[0,1]} f(x, y) from the paper; at x = (1, 0) both y = 0 and y = 1 maximize.

    θ = {"x": [2]}, δ = y with event shape (1,), one example (batch None).
    """

    def __init__(self, x: tuple[float, float] = (1.0, 0.0), dtype: torch.dtype = torch.float64):
        params = {"x": torch.tensor(x, dtype=dtype, requires_grad=True)}
        self.problem = mm.FunctionProblem(
            lambda p, d, batch: counterexample_value(p["x"], d[:, 0]),
            params,
            mm.Box(0.0, 1.0),
            event_shape=(1,),
            name="counterexample",
        )
        self.batch = None

    def robust_loss(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        x = (params or self.params())["x"].detach().to(torch.float64)
        return counterexample_phi(x)

    def maximizers(
        self, params: Mapping[str, Tensor] | None = None, tol: float = 1e-12
    ) -> list[Tensor]:
        x = (params or self.params())["x"].detach().to(torch.float64)
        x2 = float(x[1])
        ys = [0.0, 1.0] if abs(x2) <= tol else ([1.0] if x2 > 0 else [0.0])
        return [torch.tensor(ys, dtype=torch.float64).reshape(-1, 1)]


# ------------------------------------------------------------------------------------------------
# g(θ, δ) = θ δ on [−1, 1]: robust loss |θ|, stationary at 0
# ------------------------------------------------------------------------------------------------


class Bilinear(Toy):
    """g(θ, δ) = θ·δ, δ ∈ [−1, 1]: R(θ) = |θ|; at θ = 0 every δ is a maximizer and ‖d*‖ = 0."""

    def __init__(self, theta: float = 0.0, dtype: torch.dtype = torch.float64):
        params = {"theta": torch.tensor([theta], dtype=dtype, requires_grad=True)}
        self.problem = mm.FunctionProblem(
            lambda p, d, batch: p["theta"][0] * d[:, 0],
            params,
            mm.Box(-1.0, 1.0),
            event_shape=(1,),
            name="bilinear",
        )
        self.batch = None

    def robust_loss(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        return (params or self.params())["theta"].detach().to(torch.float64).abs()[0]

    def maximizers(
        self, params: Mapping[str, Tensor] | None = None, tol: float = 1e-12
    ) -> list[Tensor]:
        return [mm.toys.bilinear_maximizers(float((params or self.params())["theta"][0]), tol)]


# ------------------------------------------------------------------------------------------------
# A max of k quadratic pieces with ties at a chosen point
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuadraticPieces:
    """q_j(θ) = ½ a_j ‖θ − c_j‖² + b_j for j < k: a [k], c [k, n], b [k]."""

    a: Tensor
    c: Tensor
    b: Tensor

    def __call__(self, theta: Tensor) -> Tensor:
        """θ [n] → [k]."""
        return 0.5 * self.a * ((theta - self.c) ** 2).sum(-1) + self.b

    def gradients(self, theta: Tensor) -> Tensor:
        """∇q_j(θ) = a_j (θ − c_j): [k, n]."""
        return self.a.unsqueeze(-1) * (theta - self.c)


class MaxOfQuadratics(Toy):
    """R(θ) = max_j q_j(θ), with the pieces in ``tied`` equal (and maximal) at ``theta0``.

    As a min-max problem: δ ∈ [0, k−1] (event shape (1,)) and g(θ, δ) = Σ_j hat_j(δ) q_j(θ),
    the piecewise-linear interpolation of the pieces at the integer nodes; g is linear in δ between
    nodes, so its maximizers are the nodes of the maximal pieces (and segments between adjacent
    ones, whose gradients lie in the same hull).
    """

    def __init__(
        self,
        k: int = 3,
        dim: int = 2,
        *,
        tied: int | None = None,
        gap: float = 1.0,
        seed: int = 0,
        theta0: Tensor | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        if k < 1 or dim < 1:
            raise ValueError("need k ≥ 1 pieces in dim ≥ 1")
        tied = k if tied is None else tied
        if not 1 <= tied <= k:
            raise ValueError(f"tied must be in [1, k] = [1, {k}], got {tied}")
        g = torch.Generator().manual_seed(seed)
        theta0 = torch.randn(dim, generator=g, dtype=dtype) if theta0 is None else theta0.to(dtype)
        a = torch.rand(k, generator=g, dtype=dtype) + 0.5
        c = torch.randn(k, dim, generator=g, dtype=dtype) * 2
        level = 0.5 * a * ((theta0 - c) ** 2).sum(-1)
        b = -level + torch.where(torch.arange(k) < tied, 0.0, -abs(gap)).to(dtype)
        self.pieces = QuadraticPieces(a, c, b)
        self.k, self.theta0, self.tied = k, theta0, tied
        pieces = self.pieces
        self.problem = mm.FunctionProblem(
            lambda p, d, batch: (mm.toys.hats(d[:, 0], k) * pieces(p["theta"])).sum(-1),
            {"theta": theta0.clone().requires_grad_(True)},
            mm.Box(0.0, float(k - 1)),
            event_shape=(1,),
            name=f"max_of_{k}_quadratics",
        )
        self.batch = None

    def robust_loss(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        theta = (params or self.params())["theta"].detach()
        return self.pieces(theta).max()

    def maximizers(
        self, params: Mapping[str, Tensor] | None = None, tol: float = 1e-9
    ) -> list[Tensor]:
        theta = (params or self.params())["theta"].detach()
        q = self.pieces(theta)
        nodes = torch.nonzero(q >= q.max() - tol * max(1.0, float(q.abs().max()))).flatten()
        return [nodes.to(theta.dtype).reshape(-1, 1)]


# ------------------------------------------------------------------------------------------------
# The 2-2-1 ELU network on Gaussian points
# ------------------------------------------------------------------------------------------------


class ELUNetwork(Toy):
    """A 2-2-1 ELU network with sigmoid output and binary cross-entropy on n Gaussian points in R²,
    labels 1[x₁ > 0], under an L∞ perturbation of radius ε = 1.

    The robust loss and maximizers are computed by enumeration on a fine grid over [−ε, ε]²
    (``resolution`` points per axis, refined by PGD from the best grid points), exact up to the
    grid's resolution.
    """

    def __init__(
        self, n: int = 100, eps: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float32
    ):
        self.model, x, y = elu_network(n, seed, dtype)
        self.eps = eps
        self.problem = mm.ModuleProblem(self.model, bce_per_example, mm.LinfBall(eps))
        self.batch = (x, y)

    def candidates(
        self, params: Mapping[str, Tensor] | None = None, resolution: int = 201, m: int = 4
    ) -> mm.extend.Candidates:
        """The grid's best local maxima per example (exact up to the grid)."""
        return mm.Grid(points=resolution, candidates=m, tol=1e-6)(
            self.problem, params or self.params(), self.batch
        )

    def robust_loss(
        self, params: Mapping[str, Tensor] | None = None, resolution: int = 201
    ) -> Tensor:
        c = self.candidates(params, resolution, m=1)
        return c.robust_loss().to(torch.float64)

    def maximizers(
        self, params: Mapping[str, Tensor] | None = None, resolution: int = 201
    ) -> list[Tensor]:
        c = self.candidates(params, resolution, m=4)
        best = c.values.max(0).values
        return [
            c.deltas[c.values[:, j] >= best[j] - 1e-6, j].unique(dim=0) for j in range(c.batch_size)
        ]
