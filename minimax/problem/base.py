"""The `Problem` interface and its `PassCounter`: g(θ, δ; batch) → per-example values [B].

Shapes and units (δ [*lead, B, *event], passes per batch of B examples) are stated once, in
`minimax.problem`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import vmap

from minimax.sets import PerturbationSet

Params = dict[str, Tensor]
Batch = Any

__all__ = ["Batch", "Params", "PassCounter", "Problem", "VectorizationWarning"]


@dataclass
class PassCounter:
    """Forward and backward passes, in units of one pass over a batch of B examples."""

    forward: int = 0
    backward: int = 0

    def add(self, *, forward: int = 0, backward: int = 0) -> None:
        """Count ``forward`` and ``backward`` more passes (the one way passes are counted)."""
        self.forward += int(forward)
        self.backward += int(backward)

    def snapshot(self) -> tuple[int, int]:
        return self.forward, self.backward

    def restore(self, snapshot: tuple[int, int]) -> None:
        """Set the counts back to a `snapshot`."""
        self.forward, self.backward = snapshot

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Passes run inside are not counted (e.g. a re-measure that is not part of a step)."""
        saved = self.snapshot()
        try:
            yield
        finally:
            self.restore(saved)


class VectorizationWarning(RuntimeWarning):
    """A vectorized path (torch.func ``vmap``) failed and a loop is used instead (same values)."""


class Problem(ABC):
    """A robust objective R(θ) = mean_b max_{δ_b ∈ S} g(θ, δ_b; batch_b).

    Subclasses define `values`, `parameters` and `delta_shape`. `perturbation` is the set S and
    `event_ndim` the number of trailing dims of one example's δ.
    """

    perturbation: PerturbationSet
    event_ndim: int

    def __init__(self, *, vectorize: bool = True) -> None:
        self.passes = PassCounter()
        self.vectorize = vectorize
        self.fallbacks: set[str] = set()

    def vmap_failed(self, what: str, error: Exception) -> None:
        """Record that the vectorized path ``what`` cannot run on this problem (a one-time
        `VectorizationWarning` per path); callers then use their loop."""
        if what not in self.fallbacks:
            self.fallbacks.add(what)
            warnings.warn(
                f"{what}: torch.func.vmap failed on {self!r} ({type(error).__name__}: {error}); "
                "using a loop over candidates from now on (same values, slower). Build the "
                "problem with vectorize=False to choose the loop and silence this warning.",
                VectorizationWarning,
                stacklevel=3,
            )

    def can_vmap(self, what: str) -> bool:
        """Whether the vectorized path ``what`` should be tried."""
        return self.vectorize and what not in self.fallbacks

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
        no passes: callers that run it directly account for their passes themselves."""

    # -- shared behaviour ----------------------------------------------------------------------
    def clean_input(self, batch: Batch) -> Tensor | None:
        """The clean input x [B, *event] that bounds on x + δ refer to (None if not applicable)."""
        return None

    def reference(self, batch: Batch) -> Tensor:
        """A tensor whose device and float dtype the candidates δ use."""
        p = next(iter(self.parameters().values()))
        return p

    def values(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """g(θ, δ; batch): deltas [*lead, B, *event] → values [*lead, B].

        Each leading index is evaluated as its own forward pass (no batch statistics are shared
        between candidates); the pass counter grows by prod(lead).
        """
        shape = self.delta_shape(batch)
        self._check_delta(deltas, shape)
        lead = deltas.shape[: deltas.ndim - len(shape)]
        self.passes.add(forward=math.prod(lead))
        if not lead:
            return self.objective(params, deltas, batch)
        flat = deltas.reshape(-1, *shape)
        out = self._values_stacked(params, flat, batch)
        return out.reshape(*lead, shape[0])

    def preferred_chunk(self, deltas: Tensor) -> int | None:
        """How many candidates of deltas [n, B, *event] an inner solver should evaluate per call
        (forward and backward); None: all at once."""
        return None

    def _values_stacked(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """[n, B, *event] → [n, B]; vmap over candidates, with a loop where vmap cannot run."""
        if self.can_vmap("values"):
            try:
                return vmap(lambda d: self.objective(params, d, batch))(deltas)
            except (RuntimeError, NotImplementedError, ValueError) as err:
                self.vmap_failed("values", err)
        return torch.stack([self.objective(params, d, batch) for d in deltas])

    def values_and_input_grad(
        self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch
    ) -> tuple[Tensor, Tensor]:
        """g and ∇_δ g at deltas [*lead, B, *event]: values [*lead, B] (detached) and the
        gradient of their sum, shaped like deltas. One forward and one backward per candidate."""
        shape = self.delta_shape(batch)
        self._check_delta(deltas, shape)
        lead = deltas.shape[: deltas.ndim - len(shape)]
        # One candidate: its δ [B, *event] is the leaf (no select/stack in the graph to undo).
        d = (deltas.reshape(shape) if math.prod(lead) == 1 else deltas).detach()
        d.requires_grad_(True)
        with torch.enable_grad():
            v = self.values(params, d, batch)
            (g,) = torch.autograd.grad(v.sum(), d)
        self.passes.add(backward=math.prod(lead))
        return v.detach().reshape(*lead, shape[0]), g.reshape(deltas.shape)

    def _check_delta(self, deltas: Tensor, shape: torch.Size) -> None:
        if not isinstance(deltas, Tensor):
            raise TypeError(f"delta must be a tensor, got {type(deltas).__name__}")
        n = len(shape)
        if deltas.ndim < n or tuple(deltas.shape[deltas.ndim - n :]) != tuple(shape):
            raise ValueError(
                f"delta has shape {tuple(deltas.shape)}, expected "
                f"[*lead, {', '.join(map(str, shape))}]"
                " (candidates stacked in front of one example batch's δ shape)"
            )

    @contextlib.contextmanager
    def statistics_frozen(self) -> Iterator[None]:
        """Inside, forwards never update running statistics (no-op for problems without them)."""
        yield

    def update_statistics(self, batch: Batch, delta: Tensor) -> None:
        """Update running statistics from one no-grad forward at δ [B, *event] (no-op here)."""
        return None

    @property
    def has_running_statistics(self) -> bool:
        return False

    @property
    def examples_coupled(self) -> bool:
        """True when one example's value depends on the other examples' δ (e.g. train-mode
        BatchNorm statistics), so the batch objective is not a sum of per-example maxima."""
        return False
