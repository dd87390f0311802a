"""Exact enumeration of a finite max: every vertex of the simplex is a candidate.

For an objective that is linear in δ ∈ Δ_k, g(θ, δ; b) = Σ_j δ_j q_bj(θ) (a finite max over k
pieces written as a max over mixed strategies), max_δ g = max_j q_bj(θ) is attained at vertices,
and the θ-gradients over any maximal face are convex combinations of its vertices' gradients.
So the k vertices, with their exact values, carry all of Danskin's set: `DDi`'s ``tolerance``
then keeps the ε-active pieces (those within τ of the max).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from minimax.engine import Engine
from minimax.inner.base import Candidates, InnerSolver
from minimax.problem import Batch, Params, Problem

__all__ = ["Enumerate", "HasPieces", "VertexSet"]


@runtime_checkable
class VertexSet(Protocol):
    """A perturbation set with finitely many vertices (e.g. `minimax.sets.Simplex`)."""

    def vertices(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """The vertices as rows ``[V, *event]``."""
        ...


@runtime_checkable
class HasPieces(Protocol):
    """A problem that says which pieces exist for a batch (e.g. groups with an example in it)."""

    def present(self, batch: Batch) -> Tensor:
        """``[B, V]`` bool: piece j exists for example b (at least one per example)."""
        ...


class Enumerate(InnerSolver):
    """Evaluate g at every vertex of the set (one `Problem.values` call) and return them all.

    Candidates: ``deltas [m, B, *event]`` (vertices, e.g. one-hot rows of `Simplex`) and
    ``values [m, B]``, the exact g at each. Pieces come in vertex order (piece j is candidate j
    when every piece exists).

    Pieces that do not exist. A problem may say, through a ``present(batch) -> [B, V]`` bool
    method (`HasPieces`), that some pieces do not exist for a batch, such as groups with no
    example in it (`minimax.WorstGroupProblem`). Those are never returned: each example's list
    holds its present pieces in vertex order, padded at the end with its best present piece (a
    duplicate leaves every hull unchanged); m is the largest number of present pieces. With one
    example (a worst-group problem) m is exactly the number of present pieces. So an absent
    piece, whose gradient may be 0, never enters `DDi`'s hull and never fakes stationarity.

    Exactness: the max over the set is the max over the vertices, and Danskin's set is the hull
    of the maximal vertices' gradients, when g is affine in δ (a finite max over pieces; more
    generally convex in δ gives the right max value). Batch-level `DDi` treats candidate i as the
    same piece for every example: for B > 1 independent examples use ``DDi(per_example=True)``.

    Non-finite values of present pieces raise `minimax.NonFiniteError`.
    """

    def __repr__(self) -> str:
        return "Enumerate()"

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: torch.Generator | None
    ) -> Candidates:
        problem = engine.problem
        S = problem.perturbation
        if not isinstance(S, VertexSet):
            raise TypeError(
                f"Enumerate needs a perturbation set with finitely many vertices (a .vertices() "
                f"method, e.g. minimax.Simplex(k)); {problem!r} has {S!r}"
            )
        shape = problem.delta_shape(batch)
        b, event = shape[0], shape[1:]
        ref = problem.reference(batch)
        verts = S.vertices(dtype=ref.dtype, device=ref.device)  # [V, *event]
        if tuple(verts.shape[1:]) != tuple(event):
            raise ValueError(
                f"the vertices of {S!r} have shape {tuple(verts.shape[1:])}, but one example's δ "
                f"has shape {tuple(event)}"
            )
        deltas = verts.unsqueeze(1).expand(-1, b, *event)  # [V, B, *event]
        detached = {k: v.detach() for k, v in params.items()}
        with torch.no_grad():
            values = engine.values(detached, deltas, batch)  # [V, B]
        present = self._present(problem, batch, values.shape).to(values.device)
        engine.refuse_nonfinite_values(values[present], "Enumerate")  # absent: anything
        index = _present_first(values, present)  # [m, B]
        cols = torch.arange(b, device=index.device)
        return Candidates(verts[index].clone(), values[index, cols])

    @staticmethod
    def _present(problem: Problem, batch: Batch, size: torch.Size) -> Tensor:
        """``[V, B]`` bool from the problem's ``present(batch)`` (all True without one)."""
        v, b = size
        if not isinstance(problem, HasPieces):
            return torch.ones(v, b, dtype=torch.bool)
        mask = problem.present(batch)
        if mask.dtype != torch.bool or tuple(mask.shape) != (b, v):
            raise ValueError(
                f"{problem!r}.present(batch) must be a bool tensor [B, V] = [{b}, {v}], got "
                f"{mask.dtype} {tuple(mask.shape)}"
            )
        if not bool(mask.any(dim=1).all()):
            raise ValueError(f"{problem!r}: some example has no present piece")
        return mask.T


def _present_first(values: Tensor, present: Tensor) -> Tensor:
    """``[m, B]`` vertex indices: per example its present pieces in order, then its best one."""
    v, b = values.shape
    present = present.to(values.device)
    order = torch.arange(v, device=values.device).unsqueeze(1).expand(v, b)
    # present pieces first, in vertex order (a stable sort on "absent")
    ranked = torch.sort((~present).to(torch.int8), dim=0, stable=True).indices  # [V, B]
    counts = present.sum(dim=0)  # [B]
    best = torch.where(present, values, -torch.inf).argmax(dim=0)  # [B]
    m = int(counts.max())
    rank = order[:m]
    return torch.where(rank < counts, ranked[:m], best.expand(m, b))
