"""The box {lower ≤ δ ≤ upper} elementwise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from minimax.sets.base import (
    PerturbationSet,
    Scalar,
    as_tensor_like,
    check_bound,
    check_order,
    flatten_event,
    format_value,
    resolve_event_ndim,
)

__all__ = ["Box"]


class Box(PerturbationSet):
    """The box ``{lower ≤ δ ≤ upper}`` elementwise (e.g. y ∈ [0, 1] for toy problems).

    ``lower``/``upper``: floats or tensors broadcastable to one example's event shape. Exact
    projection (clamp); L∞ geometry: ascent direction ``sign(grad)``, dual norm ``‖grad‖₁``.
    The ``x`` arguments are accepted for a uniform interface and ignored.
    """

    def __init__(self, lower: float | Tensor, upper: float | Tensor) -> None:
        lo = check_bound(lower, "lower")
        hi = check_bound(upper, "upper")
        if lo is None or hi is None:
            raise ValueError("Box needs both lower and upper bounds")
        check_order(lo, hi)
        self._lower: float | Tensor = lo
        self._upper: float | Tensor = hi

    @property
    def lower(self) -> float | Tensor:
        """Elementwise lower bound on δ."""
        return self._lower

    @property
    def upper(self) -> float | Tensor:
        """Elementwise upper bound on δ."""
        return self._upper

    def __repr__(self) -> str:
        return f"Box(lower={format_value(self._lower)}, upper={format_value(self._upper)})"

    def project(
        self, delta: Tensor, x: Tensor | None = None, *, event_ndim: int | None = None
    ) -> Tensor:
        """Clamp ``delta`` ``[*lead, B, *event]`` into the box (exact projection)."""
        resolve_event_ndim(delta.ndim, event_ndim)
        return torch.clamp(
            delta, min=as_tensor_like(self._lower, delta), max=as_tensor_like(self._upper, delta)
        )

    def random(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        x: Tensor | None = None,
        event_ndim: int | None = None,
    ) -> Tensor:
        """Uniform sample in the box, shape ``[*lead, B, *event]``; needs finite bounds."""
        size, dtype, device = self._resolve_random_args(shape, generator, dtype, device, x)
        resolve_event_ndim(len(size), event_ndim)
        u = torch.rand(size, generator=generator, dtype=dtype, device=device)
        lo, hi = as_tensor_like(self._lower, u), as_tensor_like(self._upper, u)
        if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
            raise ValueError(f"{self!r}.random needs finite lower and upper bounds")
        return torch.clamp(lo + (hi - lo) * u, min=lo, max=hi)

    def ascent_step(
        self, delta: Tensor, grad: Tensor, step_size: Scalar, *, event_ndim: int | None = None
    ) -> Tensor:
        """``delta + step_size · sign(grad)`` (``step_size``: float or ``[B]``); not projected."""
        e = resolve_event_ndim(delta.ndim, event_ndim)
        if grad.shape != delta.shape:
            raise ValueError(
                f"grad shape {tuple(grad.shape)} must equal delta shape {tuple(delta.shape)}"
            )
        return delta + self._step(step_size, delta, e) * torch.sign(grad).to(delta.dtype)

    def dual_norm(self, grad: Tensor, event_ndim: int | None = None) -> Tensor:
        """``‖grad‖₁`` per example, ``[*lead, B]``: the gain of a unit :meth:`ascent_step`."""
        e = resolve_event_ndim(grad.ndim, event_ndim)
        return flatten_event(grad, e).abs().sum(dim=-1)

    def contains(
        self,
        delta: Tensor,
        x: Tensor | None = None,
        *,
        event_ndim: int | None = None,
        atol: float = 1e-6,
        rtol: float = 1e-5,
    ) -> Tensor:
        """``[*lead, B]`` bools: every entry within ``[lower − atol, upper + atol]``."""
        e = resolve_event_ndim(delta.ndim, event_ndim)
        inside = (delta >= as_tensor_like(self._lower, delta) - atol) & (
            delta <= as_tensor_like(self._upper, delta) + atol
        )
        return flatten_event(inside, e).all(dim=-1)
