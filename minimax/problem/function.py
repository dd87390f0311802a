"""`FunctionProblem`: a min-max problem from a plain function fn(params, delta, batch) -> [B]."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from minimax.problem.base import Batch, Params, Problem
from minimax.sets import PerturbationSet

__all__ = ["FunctionProblem"]


def _batch_size(batch: Batch) -> int:
    if batch is None:
        return 1
    if isinstance(batch, Tensor):
        if batch.ndim == 0:
            raise ValueError("a tensor batch needs a leading batch dimension, got a 0-dim tensor")
        return int(batch.shape[0])
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return _batch_size(batch[0])
    if isinstance(batch, Mapping):
        for v in batch.values():
            if isinstance(v, Tensor):
                return _batch_size(v)
    raise ValueError(
        "cannot infer the batch size: pass None (B = 1), a tensor [B, ...], a tuple whose first "
        "item is a tensor [B, ...], or give FunctionProblem a `batch_size` function"
    )


class FunctionProblem(Problem):
    """A problem from a plain function ``fn(params, delta, batch) -> [B]``.

    Args:
        fn: the objective g; δ has shape [B, *event_shape], the result shape [B]. It should be
            torch.func-transformable (no in-place ops on inputs, no ``.item()``); otherwise set
            ``vectorize=False`` and candidates are evaluated in a loop.
        params: initial θ, name → tensor. Tensors are used as given (made leaves that require grad).
        perturbation: the set S of δ.
        event_shape: the shape of one example's δ (default ``()``: a scalar δ per example).
        batch_size: optional ``batch -> B``; by default B is read from the batch (None means B = 1).
    """

    def __init__(
        self,
        fn: Callable[[Mapping[str, Tensor], Tensor, Batch], Tensor],
        params: Mapping[str, Tensor],
        perturbation: PerturbationSet,
        *,
        event_shape: Sequence[int] = (),
        batch_size: Callable[[Batch], int] | None = None,
        vectorize: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(vectorize=vectorize)
        if not callable(fn):
            raise TypeError("fn must be callable as fn(params, delta, batch) -> values [B]")
        if not isinstance(perturbation, PerturbationSet):
            raise TypeError(
                f"perturbation must be a minimax perturbation set (LinfBall, L2Ball, L1Ball, Box), "
                f"got {type(perturbation).__name__}"
            )
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict name -> tensor, got {type(params).__name__}")
        if not params:
            raise ValueError("params must be a non-empty dict name -> tensor")
        self.fn = fn
        self._params: Params = {}
        for k, v in params.items():
            if not isinstance(v, Tensor) or not v.is_floating_point():
                raise TypeError(f"params[{k!r}] must be a floating-point tensor")
            if not v.requires_grad:
                v.requires_grad_(True)
            self._params[k] = v
        devices = {v.device for v in self._params.values()}
        if len(devices) > 1:
            raise ValueError(f"all params must be on one device, got {sorted(map(str, devices))}")
        self.perturbation = perturbation
        if not isinstance(event_shape, (tuple, list, torch.Size)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in event_shape
        ):
            raise TypeError(
                f"event_shape must be a tuple of non-negative ints (one example's δ), got "
                f"{event_shape!r}"
            )
        self.event_shape = torch.Size(event_shape)
        self.event_ndim = len(self.event_shape)
        self._batch_size = batch_size or _batch_size
        self.name = name or getattr(fn, "__name__", "fn")

    def __repr__(self) -> str:
        event = tuple(self.event_shape)
        return f"FunctionProblem({self.name}, {self.perturbation!r}, event_shape={event})"

    def parameters(self) -> Params:
        return self._params

    def delta_shape(self, batch: Batch) -> torch.Size:
        b = self._batch_size(batch)
        if b < 1:
            raise ValueError("the batch is empty (B = 0): pass at least one example")
        return torch.Size((b, *self.event_shape))

    def objective(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        out = self.fn(params, delta, batch)
        if out.shape != delta.shape[:1]:
            raise ValueError(
                f"{self.name} returned shape {tuple(out.shape)}, expected per-example values "
                f"[{delta.shape[0]}] (one value per example, not a mean)"
            )
        return out
