"""Fixtures shared by the library's tests: small problems and models built from torch and
`minimax` alone (the library's tests never import the `problems` package).

Every fixture is session-scoped and returns a builder, so hypothesis tests can use it too:

- ``elu_network(n=100, eps=1.0, seed=0, dtype=torch.float32) -> ELUNetwork``: a 2-2-1 ELU network
  with binary cross-entropy on n Gaussian points in R² under an L∞ ball of radius ε, with its
  robust loss by grid enumeration;
- ``logistic(n=16, dim=5, seed=0) -> (nn.Linear(dim, 1), loss, (x [n, dim], y [n]))``: a float64
  logistic-regression model with a per-example loss (closed-form L∞ maximizers);
- ``bn_net() -> BNNet``: an MLP 3 → 6 → 3 with BatchNorm1d (couples the examples in train mode);
- ``max_of_quadratics(k=3, dim=2, *, tied=None, gap=1.0, seed=0) -> QuadraticPieces``: a max of k
  random quadratic pieces, the first ``tied`` of them tied (and maximal) at a random θ₀, as a
  `KnownProblem` (`minimax.testing.max_of_pieces`) with the pieces' gradients at θ₀;
- ``group_case(groups, num_groups=4, seed=0) -> GroupCase``: a `WorstGroupProblem` over a float64
  linear classifier, one example per group label, with each group's loss by autograd;
- ``enumerate_optimizer(known, rule, lr=1.0, step_size="armijo", optimizer=None, **options)``: a
  `MinMaxOptimizer` with the exact inner max (`Enumerate`) on a known finite max problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

import minimax as mm
from minimax import toys
from minimax.testing.problems import KnownProblem, max_of_pieces

# ------------------------------------------------------------------------------------------------
# The 2-2-1 ELU network on Gaussian points
# ------------------------------------------------------------------------------------------------


class ELUNetwork:
    """A 2-2-1 ELU network with sigmoid output and binary cross-entropy on n Gaussian points
    x [n, 2] in R², labels y = 1[x₁ > 0] [n], under an L∞ perturbation of radius ε.

    ``problem`` (a `ModuleProblem` over ``model``), ``batch`` = (x, y), ``params()`` (θ); the robust
    loss is computed by enumeration on a grid over [−ε, ε]² (``resolution`` points per axis),
    exact up to the grid's resolution.
    """

    def __init__(
        self, n: int = 100, eps: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float32
    ):
        self.model, x, y = toys.elu_network(n, seed, dtype)
        self.eps = eps
        self.problem = mm.ModuleProblem(self.model, toys.bce_per_example, mm.LinfBall(eps))
        self.batch = (x, y)

    def params(self) -> dict[str, Tensor]:
        return self.problem.parameters()

    def robust_loss(
        self, params: Mapping[str, Tensor] | None = None, resolution: int = 201
    ) -> Tensor:
        """R(θ) as a float64 scalar: the mean over examples of the grid's best value."""
        grid = mm.Grid(points=resolution, candidates=1, tol=1e-6)
        c = grid(self.problem, params or self.params(), self.batch)
        return c.robust_loss().to(torch.float64)


@pytest.fixture(scope="session")
def elu_network() -> type[ELUNetwork]:
    """The ELU network's builder: ``elu_network(n=100, eps=1.0, seed=0, dtype=float32)``."""
    return ELUNetwork


# ------------------------------------------------------------------------------------------------
# Small models
# ------------------------------------------------------------------------------------------------


def _logistic(
    n: int = 16, dim: int = 5, seed: int = 0
) -> tuple[nn.Linear, Callable[[Tensor, Tensor], Tensor], tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g) > 0.5).to(torch.float64)
    lin = nn.Linear(dim, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1, dim, generator=g, dtype=torch.float64))

    def loss(out: Tensor, t: Tensor) -> Tensor:
        return nn.functional.binary_cross_entropy_with_logits(out[:, 0], t, reduction="none")

    return lin, loss, (x, y)


@pytest.fixture(scope="session")
def logistic() -> Callable[..., tuple]:
    """``logistic(n=16, dim=5, seed=0) -> (linear [dim → 1], loss, (x [n, dim], y [n]))``, float64;
    the weights are drawn from the seeded generator (the bias from torch's global RNG)."""
    return _logistic


class BNNet(nn.Module):
    """Linear 3 → 6, BatchNorm1d, tanh, Linear 6 → 3: x [B, 3] → logits [B, 3]."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 6)
        self.bn = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.tanh(self.bn(self.fc1(x))))


@pytest.fixture(scope="session")
def bn_net() -> type[BNNet]:
    """The BatchNorm MLP's class (its weights come from torch's global RNG)."""
    return BNNet


# ------------------------------------------------------------------------------------------------
# A max of k random quadratic pieces
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuadraticPieces:
    """A max of k quadratic pieces q_j(θ) = ½ a_j ‖θ − c_j‖² + e_j with the tied ones maximal at
    θ₀: ``known`` (a `KnownProblem`, one example, δ ∈ [0, k − 1]), ``theta0`` [n] and
    ``gradients`` [k, n], ∇q_j(θ₀) = a_j (θ₀ − c_j)."""

    known: KnownProblem
    theta0: Tensor
    gradients: Tensor


def _max_of_quadratics(
    k: int = 3, dim: int = 2, *, tied: int | None = None, gap: float = 1.0, seed: int = 0
) -> QuadraticPieces:
    g = torch.Generator().manual_seed(seed)
    tied = k if tied is None else tied
    theta0 = torch.randn(dim, generator=g, dtype=torch.float64)
    a = torch.rand(k, generator=g, dtype=torch.float64) + 0.5
    c = torch.randn(k, dim, generator=g, dtype=torch.float64) * 2
    gaps = torch.where(torch.arange(k) < tied, 0.0, abs(gap)).to(torch.float64)
    known = max_of_pieces(a=a[None], c=c[None], gaps=gaps[None], theta=theta0)
    return QuadraticPieces(known, theta0, a.unsqueeze(-1) * (theta0 - c))


@pytest.fixture(scope="session")
def max_of_quadratics() -> Callable[..., QuadraticPieces]:
    """``max_of_quadratics(k=3, dim=2, *, tied=None, gap=1.0, seed=0) -> QuadraticPieces``: a, θ₀
    and c drawn from a seeded generator (a ∈ [0.5, 1.5), θ₀ ~ N(0, 1), c ~ N(0, 4)); pieces
    j ≥ ``tied`` sit ``gap`` below the max at θ₀ (every piece is tied by default)."""
    return _max_of_quadratics


# ------------------------------------------------------------------------------------------------
# A worst-group problem over a linear classifier
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupCase:
    """``model`` (float64 ``nn.Linear(3, 2)``), ``problem`` (its `WorstGroupProblem` over
    ``num_groups`` groups with cross-entropy) and ``batch`` = (x [N, 3], y [N], group [N])."""

    model: nn.Linear
    problem: mm.WorstGroupProblem
    batch: tuple[Tensor, Tensor, Tensor]

    def group_loss(self, group: int) -> Tensor:
        """The mean cross-entropy of the group's examples, by autograd through ``model``."""
        x, y, g = self.batch
        sel = g == group
        return nn.functional.cross_entropy(self.model(x[sel]), y[sel])


def _group_case(groups: list[int], num_groups: int = 4, seed: int = 0) -> GroupCase:
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    x = torch.randn(len(groups), 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (len(groups),), generator=gen)
    g = torch.tensor(groups)
    return GroupCase(model, mm.WorstGroupProblem.from_module(model, num_groups), (x, y, g))


@pytest.fixture(scope="session")
def group_case() -> Callable[..., GroupCase]:
    """``group_case(groups, num_groups=4, seed=0) -> GroupCase``: one example per entry of
    ``groups`` (its group label); weights, x and y drawn from a seeded generator."""
    return _group_case


# ------------------------------------------------------------------------------------------------
# A MinMaxOptimizer over exact enumeration
# ------------------------------------------------------------------------------------------------


def _enumerate_optimizer(
    known: KnownProblem,
    rule: mm.extend.Rule,
    lr: float = 1.0,
    step_size: object = "armijo",
    optimizer: Callable[[list[Tensor]], torch.optim.Optimizer] | None = None,
    **options: object,
) -> mm.MinMaxOptimizer:
    p = known.problem
    theta = list(p.parameters().values())
    opt = optimizer(theta) if optimizer else torch.optim.SGD(theta, lr=lr)
    return mm.MinMaxOptimizer(p, opt, mm.Enumerate(), rule, step_size=step_size, **options)


@pytest.fixture(scope="session")
def enumerate_optimizer() -> Callable[..., mm.MinMaxOptimizer]:
    """``enumerate_optimizer(known, rule, lr=1.0, step_size="armijo", optimizer=None, **options)``:
    a `MinMaxOptimizer` on a known finite max problem with the exact inner max (`Enumerate`), over
    SGD(lr) or ``optimizer(θ)``; the options go to the `MinMaxOptimizer`."""
    return _enumerate_optimizer
