"""PGD's update δ ↦ project(δ + η · d(∇), x) as a function built once per search.

Public: `projected_step(S, x, step_size, event_ndim) -> step(delta, grad)`.

Everything that does not change between iterations (the radius, the bounds lower − x and
upper − x, the argument checks) is done when the step is built, not at every call; the result
is the same as ``S.project(S.ascent_step(delta, grad, step_size), x)``, bit for bit. Sets other
than the library's norm balls (or subclasses that override their methods) get that composition.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from minimax.sets.base import PerturbationSet, Scalar, flatten_event, per_example_value
from minimax.sets.lp import L2Ball, LinfBall, _NormBall

__all__ = ["projected_step"]

Step = Callable[[Tensor, Tensor], Tensor]


def projected_step(
    S: PerturbationSet, x: Tensor | None, step_size: Scalar, event_ndim: int
) -> Step:
    """``step(delta, grad)`` = ``S.project(S.ascent_step(delta, grad, step_size), x)`` for
    delta, grad [*lead, B, *event] (``event_ndim`` trailing dims per example; x [B, *event])."""
    if not _plain_ball(S):
        return lambda d, g: S.project(
            S.ascent_step(d, g, step_size, event_ndim=event_ndim), x, event_ndim=event_ndim
        )
    assert isinstance(S, _NormBall)
    return _BallStep(S, x, step_size, event_ndim)


def _plain_ball(S: PerturbationSet) -> bool:
    """An L∞ or L2 ball whose update methods are the library's own."""
    base = LinfBall if isinstance(S, LinfBall) else L2Ball if isinstance(S, L2Ball) else None
    names = ("project", "ascent_step", "_clamp_bounds", "_bounds_x", "_delta_bounds")
    return base is not None and all(getattr(type(S), n) is getattr(base, n) for n in names)


class _BallStep:
    """The update of a norm ball, its bounds on δ computed at the first call. For L∞ with a float
    radius the ball's clamp and the bounds' clamp are one: clamp(clamp(v, −ε, ε), lo, hi) =
    clamp(v, max(−ε, lo), min(ε, hi)) exactly, since both intervals hold 0 (x is clipped into
    the bounds first)."""

    def __init__(self, S: _NormBall, x: Tensor | None, step_size: Scalar, e: int) -> None:
        self.S, self.x, self.step_size, self.e = S, x, step_size, e
        self.bounds: tuple[Tensor | None, Tensor | None] | None = None
        self.elementwise = isinstance(S, LinfBall)  # sign and clamp need no flattening
        self.fused = self.elementwise and isinstance(S._eps, float)  # one clamp per step

    def __call__(self, delta: Tensor, grad: Tensor) -> Tensor:
        S, e = self.S, self.e
        if grad.shape != delta.shape:
            raise ValueError(
                f"grad shape {tuple(grad.shape)} must equal delta shape {tuple(delta.shape)}"
            )
        if self.elementwise:
            direction = S._direction_flat(grad)
        else:
            direction = S._direction_flat(flatten_event(grad, e)).reshape(delta.shape)
        if direction.dtype != delta.dtype:
            direction = direction.to(delta.dtype)
        out = S._add_step(delta, direction, self.step_size, e)
        if self.bounds is None:
            self.bounds = self._bounds(out)
        lo, hi = self.bounds
        eps = S._eps
        if self.fused:  # a clamp: no flattening (lo and hi: both or neither)
            assert isinstance(eps, float)
            return out.clamp(-eps, eps) if lo is None else torch.clamp(out, lo, hi)
        flat = flatten_event(out, e)
        if not isinstance(eps, float):
            eps = per_example_value(eps, flat, 1, "eps")
        out = S._project_flat(flat, eps).reshape(delta.shape)
        if lo is None and hi is None:
            return out
        return torch.clamp(out, lo, hi)

    def _bounds(self, like: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The bounds on δ (lower − x, upper − x), intersected with [−ε, ε] where fused."""
        S = self.S
        xb = S._bounds_x(self.x, like, "project")
        if xb is None:
            return None, None
        lo, hi = S._delta_bounds(xb, like)
        if self.fused:  # one clamp needs both sides: a missing bound is the ball's
            eps = S._eps
            assert isinstance(eps, float)
            lo = torch.full_like(xb, -eps) if lo is None else lo.clamp(min=-eps)
            hi = torch.full_like(xb, eps) if hi is None else hi.clamp(max=eps)
        return lo, hi
