"""Exact maximization on a grid, for low-dimensional toy problems (δ with at most 3 entries)."""

from __future__ import annotations

import itertools

import torch
from torch import Generator, Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.base import Candidates, InnerSolver
from minimax.problem import Batch, Params
from minimax.sets import Box, LinfBall, PerturbationSet

__all__ = ["Grid", "grid_axes", "local_maxima"]


class Grid(InnerSolver):
    """Evaluate g on a uniform grid over the set and return its discrete local maxima.

    The candidates of each example are the grid's local maxima up to ``tol`` (no neighbour is
    higher by more than ``tol``), best first. Every grid point within ``tol`` of the best is a
    local maximum by that test, so maxima tied up to rounding are all kept by construction; they
    count as ties: when there are more ties than
    ``candidates``, evenly spaced ones (in grid order, the two extremes included) are returned, so
    a flat maximizer set is covered end to end. Examples with fewer local maxima are padded with
    their best point (a duplicate leaves every hull unchanged).

    Works for `Box` and `LinfBall` (without bounds on x + δ) with at most 3 entries per example.

    Args:
        points: grid points per coordinate (endpoints included; 2 enumerates the vertices).
        candidates: m, the number of candidates returned per example.
        tol: the tie tolerance, relative: two values tie when they differ by at most
            tol × (the example's largest |g| on the grid), and never less than 16 ulps of g's
            dtype at that scale (so ties hold at |g| ≈ 1e7 as at 1, and in float32); 0 compares
            exactly.
    """

    def __init__(self, points: int = 101, candidates: int = 4, *, tol: float = 1e-9) -> None:
        points = checks.integer("points", points, minimum=2)
        candidates = checks.integer("candidates", candidates, minimum=1)
        super().__init__(restarts=candidates, random_start=False)  # deterministic: no draws
        self.points = points
        self.tol = checks.real_number("tol", tol, nonnegative=True)

    def __repr__(self) -> str:
        return f"Grid(points={self.points}, candidates={self.restarts}, tol={self.tol:g})"

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: Generator | None
    ) -> Candidates:
        problem = engine.problem
        shape = problem.delta_shape(batch)
        b, event = shape[0], shape[1:]
        ref = problem.reference(batch)
        axes = grid_axes(problem.perturbation, event, self.points, ref.dtype)
        if event.numel() > 3:
            raise ValueError(
                f"Grid enumerates at most 3 entries per example, δ has {event.numel()}: use PGD"
            )
        mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # [n1, .., nk, k]
        grid_shape = mesh.shape[:-1]
        points = mesh.reshape(-1, len(axes)).to(ref.device)  # [G, k]
        deltas = points.reshape(-1, 1, *event).expand(-1, b, *event)
        with torch.no_grad():
            values = torch.cat(
                [engine.values(params, chunk, batch) for chunk in deltas.split(4096)]
            )  # [G, B]
        engine.refuse_nonfinite_values(values, "Grid")  # every grid value, one check
        tol = self.tolerance(values)  # [B]
        local = local_maxima(values.reshape(*grid_shape, b), tol=tol)  # [G, B] bool
        chosen = torch.stack(
            [self._choose(values[:, j], local[:, j], tol[j]) for j in range(b)], dim=1
        )
        cols = torch.arange(b, device=ref.device)
        return Candidates(deltas[chosen, cols].clone(), values[chosen, cols])

    def tolerance(self, values: Tensor) -> Tensor:
        """The absolute tie tolerance [B] for grid values [G, B]: relative to each example's
        largest |g| and to the values' dtype (see ``tol``)."""
        if self.tol == 0:
            return torch.zeros(values.shape[-1], dtype=values.dtype, device=values.device)
        rel = max(self.tol, 16 * torch.finfo(values.dtype).eps)
        return rel * values.abs().amax(dim=0)

    def _choose(self, values: Tensor, local: Tensor, tol: Tensor) -> Tensor:
        """[m] grid indices for one example: ties spread evenly, then the best others."""
        idx = torch.nonzero(local).flatten()
        order = idx[values[idx].argsort(descending=True, stable=True)]
        best = values[order[0]]
        ties = idx[values[idx] >= best - tol]  # grid order
        m = self.restarts
        if len(ties) >= m:
            pick = torch.linspace(0, len(ties) - 1, m).round().long()
            return ties[pick]
        rest = order[values[order] < best - tol]
        chosen = torch.cat([ties, rest])[:m]
        pad = chosen[:1].expand(m - len(chosen))
        return torch.cat([chosen, pad])


def grid_axes(
    S: PerturbationSet, event: torch.Size, points: int, dtype: torch.dtype
) -> list[Tensor]:
    """One uniform axis of ``points`` values per entry of an example's δ (event shape ``event``):
    the box's sides for `Box`, [−ε, ε] for a `LinfBall` with a scalar ε and no x-bounds.
    Other sets are a ValueError."""
    if isinstance(S, Box):
        lo = torch.as_tensor(S.lower, dtype=dtype).broadcast_to(event).reshape(-1)
        hi = torch.as_tensor(S.upper, dtype=dtype).broadcast_to(event).reshape(-1)
    elif isinstance(S, LinfBall) and not S.has_bounds and not isinstance(S.eps, Tensor):
        hi = torch.full((event.numel(),), float(S.eps), dtype=dtype)
        lo = -hi
    else:
        raise ValueError(
            f"Grid supports Box and LinfBall with a scalar eps and no x-bounds; got {S!r}"
        )
    return [torch.linspace(float(a), float(b), points, dtype=dtype) for a, b in zip(lo, hi)]


def local_maxima(values: Tensor, tol: float | Tensor = 0.0) -> Tensor:
    """values [n1, .., nk, B] → [n1·…·nk, B] bool: no grid neighbour (all 3ᵏ − 1) is higher by
    more than ``tol`` (a number, or one per example [B]; so every point within ``tol`` of the
    global maximum is one)."""
    k = values.ndim - 1
    padded = torch.nn.functional.pad(values, (0, 0, *([1, 1] * k)), value=-torch.inf)
    is_max = torch.ones_like(values, dtype=torch.bool)
    for offset in itertools.product((-1, 0, 1), repeat=k):
        if any(offset):
            sl = (*(slice(1 + o, 1 + o + n) for o, n in zip(offset, values.shape[:k])), slice(None))
            is_max &= values >= padded[sl] - tol
    return is_max.reshape(-1, values.shape[-1])
