"""The `Problem` interface: what a min-max problem declares, g(θ, δ; batch) → values [B].

A problem declares the objective, the set S, the shapes and the parameters; it runs nothing on
its own. Evaluating and differentiating g (stacking candidates, counting passes, BatchNorm
modes, the vectorized paths) is the execution engine's (`minimax.engine`). Shapes: δ
[*lead, B, *event], stated once in `minimax.problem`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from minimax.sets import PerturbationSet

Params = dict[str, Tensor]
Batch = Any

__all__ = ["Batch", "Params", "Problem"]


class Problem(ABC):
    """A robust objective R(θ) = mean_b max_{δ_b ∈ S} g(θ, δ_b; batch_b), declared.

    Subclasses define `objective`, `parameters` and `delta_shape`. `perturbation` is the set S,
    `event_ndim` the number of trailing dims of one example's δ, and ``vectorize`` says whether
    the objective may be transformed by ``torch.func.vmap`` (False: the engine loops).
    """

    perturbation: PerturbationSet
    event_ndim: int

    def __init__(self, *, vectorize: bool = True) -> None:
        self.vectorize = vectorize

    # -- what every problem defines ------------------------------------------------------------
    @abstractmethod
    def parameters(self) -> Params:
        """The current θ: the leaf tensors an optimizer updates (name → tensor)."""

    @abstractmethod
    def delta_shape(self, batch: Batch) -> torch.Size:
        """Shape [B, *event] of one candidate δ for this batch."""

    @abstractmethod
    def objective(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        """The single-candidate objective g(θ, δ; batch): δ [B, *event] → [B].

        Public and torch.func-transformable (``grad``, ``vmap``, ``jacrev`` may wrap it); it counts
        no passes (`minimax.engine.Engine` evaluates it and counts)."""

    # -- declarations with defaults ------------------------------------------------------------
    def objective_at(
        self, params: Mapping[str, Tensor], batch: Batch
    ) -> Callable[[Tensor], Tensor]:
        """δ [B, *event] ↦ `objective` (params, δ, batch) [B] with θ and the batch fixed: what a
        loop over δ calls (a problem may check params and batch once here, not at every call)."""
        return lambda delta: self.objective(params, delta, batch)

    def clean_input(self, batch: Batch) -> Tensor | None:
        """The clean input x [B, *event] that bounds on x + δ refer to (None if not applicable)."""
        return None

    def reference(self, batch: Batch) -> Tensor:
        """A tensor whose device and float dtype the candidates δ use."""
        return next(iter(self.parameters().values()))

    def values_in_one_pass(
        self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch
    ) -> Tensor | None:
        """g at n candidates deltas [n, B, *event] → [n, B] from ONE forward, where the problem
        can (e.g. g linear in δ); None (default): one forward per candidate."""
        return None

    @property
    def has_running_statistics(self) -> bool:
        """Whether the objective has running statistics (BatchNorm) to update once per step."""
        return False

    @property
    def examples_coupled(self) -> bool:
        """True when one example's value depends on the other examples' δ (e.g. train-mode
        BatchNorm statistics), so the batch objective is not a sum of per-example maxima."""
        return False

    def check_delta(self, deltas: Tensor, batch: Batch) -> tuple[int, ...]:
        """The leading dims of deltas [*lead, B, *event]; raises on another shape."""
        shape = self.delta_shape(batch)
        if not isinstance(deltas, Tensor):
            raise TypeError(f"delta must be a tensor, got {type(deltas).__name__}")
        n = len(shape)
        if deltas.ndim < n or tuple(deltas.shape[deltas.ndim - n :]) != tuple(shape):
            raise ValueError(
                f"delta has shape {tuple(deltas.shape)}, expected "
                f"[*lead, {', '.join(map(str, shape))}]"
                " (candidates stacked in front of one example batch's δ shape)"
            )
        return tuple(deltas.shape[: deltas.ndim - n])
