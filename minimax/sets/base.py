"""The perturbation-set interface and the checks and layout helpers every set shares.

The layout convention (``[*lead, B, *event]``, ``event_ndim``, per-example ``eps``, bounds on
``x + δ``) and the exactness of each set's projection are stated once, in `minimax.sets`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from minimax.sets.arguments import CHECKED, checked_method

__all__ = [
    "PerturbationSet",
    "Scalar",
    "as_tensor_like",
    "check_bound",
    "check_order",
    "check_radius",
    "flatten_event",
    "format_value",
    "per_example_value",
    "resolve_event_ndim",
]

Scalar = float | Tensor


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def resolve_event_ndim(ndim: int, event_ndim: int | None) -> int:
    """The number of event dims of a ``[*lead, B, *event]`` tensor with ``ndim`` dims."""
    if ndim < 1:
        raise ValueError(
            "delta needs at least one (batch) dim: layout [*lead, B, *event], got a 0-dim tensor"
        )
    if event_ndim is None:
        return ndim - 1
    if isinstance(event_ndim, bool) or not isinstance(event_ndim, int):
        raise TypeError(f"event_ndim must be an int, got {event_ndim!r}")
    if not 0 <= event_ndim <= ndim - 1:
        raise ValueError(
            f"event_ndim must be in [0, {ndim - 1}] for a tensor with {ndim} dims "
            f"(layout [*lead, B, *event]), got {event_ndim}"
        )
    return event_ndim


def check_radius(value: float | int | Tensor, name: str) -> float | Tensor:
    """Validate a radius: a finite float ≥ 0 or a 0-/1-dim tensor of them."""
    if isinstance(value, Tensor):
        if value.ndim > 1:
            raise ValueError(
                f"{name} tensor must be 0-dim or 1-dim (one value per example, shape [B]), "
                f"got shape {tuple(value.shape)}"
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
        with torch.no_grad():
            v = value.detach().double()
            bad = torch.isnan(v) | (v < 0)
            if bool(bad.any()):
                raise ValueError(f"{name} must be ≥ 0, got {v[bad].flatten()[0].item()}")
            if bool(torch.isinf(v).any()):
                raise ValueError(f"{name} must be finite, got inf")
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        return value
    f = _float_or_tensor_error(value, name)
    if math.isnan(f) or f < 0:
        raise ValueError(f"{name} must be ≥ 0, got {f}")
    if math.isinf(f):
        raise ValueError(f"{name} must be finite, got {f}")
    return f


def _float_or_tensor_error(value: object, name: str) -> float:
    """``value`` (not a tensor) as a float; bools and non-numbers are a TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a float or a tensor, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a float or a tensor, got {value!r}") from None


def check_bound(value: float | int | Tensor | None, name: str) -> float | Tensor | None:
    """Validate one elementwise bound: None, a float or a tensor (no NaN)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
        if bool(torch.isnan(value.detach().double()).any()):
            raise ValueError(f"{name} must not contain NaN")
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        return value.detach()
    f = _float_or_tensor_error(value, name)
    if math.isnan(f):
        raise ValueError(f"{name} must not be NaN")
    return f


def check_order(lower: float | Tensor | None, upper: float | Tensor | None) -> None:
    """Raise ValueError unless ``lower ≤ upper`` elementwise (both broadcast together)."""
    if lower is None or upper is None:
        return
    if isinstance(lower, (int, float)) and isinstance(upper, (int, float)):
        if lower > upper:
            raise ValueError(
                f"lower must be ≤ upper elementwise, got lower = {lower} > upper = {upper}"
            )
        return
    lo = torch.as_tensor(lower).detach().to("cpu", torch.float64)
    hi = torch.as_tensor(upper).detach().to("cpu", torch.float64)
    try:
        bad = lo > hi
    except RuntimeError as err:
        raise ValueError(
            f"lower (shape {tuple(lo.shape)}) and upper (shape {tuple(hi.shape)}) "
            "must be broadcastable"
        ) from err
    if bool(bad.any()):
        lo_b, hi_b = torch.broadcast_tensors(lo, hi)
        raise ValueError(
            "lower must be ≤ upper elementwise, got lower = "
            f"{lo_b[bad].flatten()[0].item()} > upper = {hi_b[bad].flatten()[0].item()}"
        )


def per_example_value(value: Scalar, like: Tensor, event_ndim: int, name: str) -> Tensor:
    """``value`` (float, 0-dim or ``[B]`` tensor) as a tensor broadcastable to ``like``.

    ``like`` has layout ``[*lead, B, *event]`` with ``event_ndim`` event dims; a ``[B]`` value
    becomes ``[B, 1, ..., 1]`` (``event_ndim`` ones).
    """
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t
    if t.ndim != 1:
        raise ValueError(f"{name} must be a float or a tensor of shape [B], got {tuple(t.shape)}")
    b = like.shape[like.ndim - event_ndim - 1]
    if t.shape[0] != b:
        raise ValueError(
            f"{name} has length len({name}) = {t.shape[0]} but the batch has B = {b} examples "
            f"(delta shape {tuple(like.shape)}, event_ndim={event_ndim})"
        )
    return t.reshape(b, *([1] * event_ndim))


def as_tensor_like(value: Scalar, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def flatten_event(t: Tensor, event_ndim: int) -> Tensor:
    """``[*lead, B, *event]`` → ``[*lead, B, D]`` (D = prod(event); D = 1 when event_ndim = 0)."""
    return t.reshape(*t.shape[: t.ndim - event_ndim], -1)


def format_value(value: Scalar | None) -> str:
    if isinstance(value, Tensor):
        if value.ndim == 0:
            return f"{value.item():.4g}"
        return "tensor[" + ", ".join(str(s) for s in value.shape) + "]"
    return f"{value:.4g}"


class PerturbationSet(abc.ABC):
    """A compact set S for δ; all methods use the ``[*lead, B, *event]`` layout (see module doc).

    Every subclass's ``project``, ``ascent_step`` and ``contains`` check their tensor arguments
    (floating point, finite; `minimax.sets.arguments`).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in CHECKED:
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "__isabstractmethod__", False):
                if not getattr(fn, "__minimax_checked__", False):
                    setattr(cls, name, checked_method(name, fn))

    @abc.abstractmethod
    def project(
        self, delta: Tensor, x: Tensor | None = None, *, event_ndim: int | None = None
    ) -> Tensor:
        """Euclidean projection of ``delta`` ``[*lead, B, *event]`` onto S (same shape)."""

    @abc.abstractmethod
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
        """A random point of S of shape ``shape = [*lead, B, *event]`` (a random restart)."""

    @abc.abstractmethod
    def ascent_step(
        self, delta: Tensor, grad: Tensor, step_size: Scalar, *, event_ndim: int | None = None
    ) -> Tensor:
        """``delta + step_size · d(grad)``, d the steepest-ascent direction; not projected."""

    @abc.abstractmethod
    def dual_norm(self, grad: Tensor, event_ndim: int | None = None) -> Tensor:
        """Per-example gain ``⟨grad, d(grad)⟩`` of a unit ascent step, shape ``[*lead, B]``."""

    @abc.abstractmethod
    def contains(
        self,
        delta: Tensor,
        x: Tensor | None = None,
        *,
        event_ndim: int | None = None,
        atol: float = 1e-6,
        rtol: float = 1e-5,
    ) -> Tensor:
        """Boolean membership ``[*lead, B]`` of each example's δ in S (up to tolerances)."""

    @staticmethod
    def _step(step_size: Scalar, like: Tensor, event_ndim: int) -> Tensor:
        return per_example_value(step_size, like, event_ndim, "step_size")

    @staticmethod
    def _resolve_random_args(
        shape: Sequence[int],
        generator: torch.Generator | None,
        dtype: torch.dtype | None,
        device: torch.device | str | None,
        x: Tensor | None,
    ) -> tuple[torch.Size, torch.dtype, torch.device | str | None]:
        if not isinstance(shape, (tuple, list, torch.Size)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}")
        size = torch.Size(shape)
        if dtype is None:
            dtype = x.dtype if x is not None else torch.get_default_dtype()
        if device is None:
            if x is not None:
                device = x.device
            elif generator is not None:
                device = generator.device
        return size, dtype, device
