"""Argument checks shared by every public entry: each raises a ValueError or TypeError that names
the argument, says what it got and what it needs.

Written here rather than taken from a validation library: the checks are about tensors (dtype,
finiteness, shape) as much as numbers, and the messages must name the minimax argument.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import TypeVar

import torch
from torch import Tensor

__all__ = [
    "choice",
    "finite_tensor",
    "float_tensor",
    "integer",
    "radius",
    "real_number",
    "within",
]

T = TypeVar("T")


#: the largest count (steps, restarts, points, ...) an argument may ask for
MAX_COUNT = 2**31 - 1


def integer(
    name: str, value: object, *, minimum: int | None = None, maximum: int = MAX_COUNT
) -> int:
    """``value`` as an int; refuses floats with a fractional part, bools, values below
    ``minimum`` and above ``maximum`` (default 2³¹ − 1: no loop or tensor that large fits)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {out}")
    if out > maximum:
        raise ValueError(f"{name} must be an integer ≤ {maximum}, got {value!r}")
    return out


def real_number(
    name: str,
    value: object,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
    at_most: float | None = None,
    below: float | None = None,
) -> float:
    """``value`` as a float: real, finite unless ``finite=False``, > 0 or ≥ 0 when asked,
    ≤ ``at_most`` and < ``below`` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if math.isnan(out):
        raise ValueError(f"{name} must be a number, got NaN")
    if finite and not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if positive and not out > 0:
        raise ValueError(f"{name} must be > 0, got {out}")
    if nonnegative and not out >= 0:
        raise ValueError(f"{name} must be ≥ 0, got {out}")
    if at_most is not None and out > at_most:
        raise ValueError(f"{name} must be ≤ {at_most}, got {out}")
    if below is not None and not out < below:
        interval = f"in [0, {below:g})" if nonnegative else f"< {below:g}"
        raise ValueError(f"{name} must be {interval}, got {out}")
    return out


def radius(
    name: str,
    value: object,
    *,
    norm: str,
    lower: object = 0.0,
    upper: object = 1.0,
    allow_large: bool = False,
    hint: str = "pass allow_large_eps=True if you mean it",
) -> float:
    """``value`` as a radius (finite, ≥ 0). An L∞ radius wider than ``upper − lower`` (numbers;
    every input is then reachable, usually a forgotten /255) is refused unless ``allow_large``;
    ``hint`` says how to allow it."""
    out = real_number(name, value, nonnegative=True)
    if norm == "linf" and isinstance(lower, numbers.Real) and isinstance(upper, numbers.Real):
        if out > float(upper) - float(lower) and not allow_large:
            raise ValueError(
                f"{name} {out:g} is wider than the input range [{lower:g}, {upper:g}]: every "
                f"input is reachable (did you mean {out:g}/255?); {hint}"
            )
    return out


def choice(name: str, value: T, choices: Collection[T]) -> T:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, (str, int, float, type(None))) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def float_tensor(name: str, value: object) -> Tensor:
    """``value`` if it is a floating-point tensor; integer and complex tensors are refused with a
    hint (an integer image batch is usually a forgotten ``.float() / 255``)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {value.dtype}: convert it, e.g. "
            f"{name}.float() (and scale images to [0, 1])"
        )
    return value


def within(name: str, value: Tensor, lower: object = None, upper: object = None) -> Tensor:
    """``value`` if every entry is finite and in [``lower``, ``upper``] (floats or tensors that
    broadcast; None: unbounded): one fused check, one host sync."""

    def like(bound: object) -> Tensor:
        return torch.as_tensor(bound, dtype=value.dtype, device=value.device)

    flags = [torch.isfinite(value).all()]
    if lower is not None:
        flags.append((value >= like(lower)).all())
    if upper is not None:
        flags.append((value <= like(upper)).all())
    if bool(torch.stack(flags).all()):
        return value
    finite_tensor(name, value)
    lo = float(value.min())
    hi = float(value.max())
    raise ValueError(
        f"{name} lies in [{lo:.4g}, {hi:.4g}], outside the declared bounds [{lower}, {upper}] of "
        f"the perturbation set: scale it into them (e.g. images to [0, 1]) or declare the "
        "bounds it has"
    )


def finite_tensor(name: str, value: Tensor) -> Tensor:
    """``value`` if every entry is finite (one fused check)."""
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} has {bad} non-finite entries (NaN or Inf)")
    return value
