"""Candidates (the inner solvers' output) and the inner-solver interface.

Public: `Candidates`, `InnerSolver`, `starting_points`, `make_generator`, `rows_of_set` (an
ε-ball restricted to some examples of a batch).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Generator, Tensor

from minimax import checks
from minimax.engine import Engine, ScoringGraph, as_engine
from minimax.problem import Batch, Params, Problem
from minimax.sets import L2Ball, LinfBall, PerturbationSet
from minimax.sets.arguments import trusted

__all__ = [
    "Candidates",
    "InnerSolver",
    "ScoringGraph",
    "make_generator",
    "rows_of_set",
    "starting_points",
]


@dataclass(frozen=True)
class Candidates:
    """m candidate maximizers per example.

    deltas: [m, B, *event] the candidates δ_{i,b};
    values: [m, B] g(θ, δ_{i,b}; batch_b) at those candidates (detached).

    The scoring forward's graph, where kept, is the engine's (`minimax.engine.Engine`).
    """

    deltas: Tensor
    values: Tensor

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or tuple(self.deltas.shape[:2]) != tuple(self.values.shape):
            raise ValueError(
                "Candidates need deltas [m, B, ...] and values [m, B]; got "
                f"{tuple(self.deltas.shape)}"
                f" and {tuple(self.values.shape)}"
            )

    @property
    def m(self) -> int:
        return int(self.values.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.values.shape[1])

    def best_index(self) -> Tensor:
        """[B] index of each example's best (highest-value) candidate."""
        return self.values.argmax(dim=0)

    def best_values(self) -> Tensor:
        """[B] each example's best value: the robust-loss estimate per example."""
        return self.values.max(dim=0).values

    def best_deltas(self) -> Tensor:
        """[B, *event] each example's best candidate."""
        idx = self.best_index()
        return self.deltas[idx, torch.arange(self.batch_size, device=idx.device)]

    def robust_loss(self) -> Tensor:
        """Scalar estimate of R on this batch: mean_b max_i values[i, b]."""
        return self.best_values().mean()

    def __repr__(self) -> str:
        loss = float(self.robust_loss())
        return f"Candidates(m={self.m}, B={self.batch_size}, robust_loss={loss:.4g})"


def starting_points(
    problem: Problem, batch: Batch, restarts: int, *, random: bool, generator: torch.Generator
) -> Tensor:
    """Starting points [m, B, *event] for m restarts: random in the set (drawn with ``generator``,
    on its device, then moved to the problem's), or zeros."""
    shape = problem.delta_shape(batch)
    ref = problem.reference(batch)
    full = (restarts, *shape)
    if not random:
        return torch.zeros(full, dtype=ref.dtype, device=ref.device)
    x = problem.clean_input(batch)
    start = problem.perturbation.random(
        full,
        generator=generator,
        dtype=ref.dtype,
        device=generator.device,
        x=None if x is None else x.to(generator.device),
        event_ndim=len(shape) - 1,
    )
    return start.to(ref.device)


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU `torch.Generator` seeded with ``seed``; None draws fresh entropy for this generator
    only (torch's global RNG is left alone)."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


class InnerSolver(ABC):
    """Approximately maximizes g(θ, ·; batch) over the problem's set; returns Candidates.

    Owns the conventions every solver shares: ``restarts`` (m, candidates per example),
    ``random_start`` (random points of the set, else δ = 0) and ``generator`` (seeded from
    ``seed``; a ``generator=`` passed to a call overrides it for that call).
    """

    def __init__(
        self, *, restarts: int = 1, random_start: bool = True, seed: int | None = 0
    ) -> None:
        self.restarts = checks.integer("restarts", restarts, minimum=1)
        self.random_start = bool(random_start)
        self.generator: torch.Generator = make_generator(seed)

    def initial(
        self, problem: Problem, batch: Batch, generator: torch.Generator | None = None
    ) -> Tensor:
        """Starting points [m, B, *event]: random in the set (from ``generator``, default the
        solver's own), or zeros."""
        return starting_points(
            problem,
            batch,
            self.restarts,
            random=self.random_start,
            generator=generator if generator is not None else self.generator,
        )

    def __call__(
        self,
        engine: Engine | Problem,
        params: Mapping[str, Tensor],
        batch: Batch,
        *,
        generator: torch.Generator | None = None,
        scored: bool = True,
    ) -> Candidates:
        """Candidates for this batch at θ = params (params are treated as constants: detached).

        ``engine`` evaluates g (`minimax.engine.Engine`; a `Problem` is taken as its default
        engine). The engine refuses a NaN or Inf among the returned values
        (`minimax.NonFiniteError`, one check per call) and keeps the scoring forward's graph
        where its step's rule can use it. ``scored=False``: the caller reads only the deltas
        (an attack scores them its own way), so a forward spent only on their values is skipped
        and those values are NaN; non-finite deltas are refused instead.
        """
        if not isinstance(scored, bool):
            raise TypeError(f"scored must be True or False, got {scored!r}")
        engine = as_engine(engine)
        detached = {k: v.detach() for k, v in params.items()}
        engine.begin_search(scored)
        with trusted():  # the sets' argument checks would cost a host sync per iteration
            found = self.search(engine, detached, batch, generator)
        engine.found(found.deltas, found.values, solver=type(self).__name__)
        return found

    @abstractmethod
    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: Generator | None
    ) -> Candidates:
        """What a solver defines: candidates at θ = params (detached), evaluated through
        ``engine`` (its final scoring forward through `Engine.score`); ``generator`` overrides
        the solver's own for this call (pass it to `initial`)."""


def rows_of_set(S: PerturbationSet, rows: Tensor, b: int, x_ndim: int) -> LinfBall | L2Ball:
    """The same L∞ or L2 ball for the examples ``rows`` of a batch x [b, ...]: a per-example
    ε [b] and bounds shaped like x are indexed; other bounds broadcast as they are."""

    def pick(v: float | Tensor | None, ndim: int) -> float | Tensor | None:
        if isinstance(v, Tensor) and v.ndim == ndim and v.shape[0] == b:
            return v[rows.to(v.device)]
        return v

    assert isinstance(S, (LinfBall, L2Ball))
    eps = pick(S.eps, 1)
    assert eps is not None
    lower, upper = pick(S.lower, x_ndim), pick(S.upper, x_ndim)
    return type(S)(eps, lower=lower, upper=upper)
