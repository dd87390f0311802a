"""Shared pieces of the known problems: float64, reprs that rebuild a problem, tie tolerances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DTYPE",
    "Nested",
    "as_float64",
    "call_repr",
    "floats",
    "fmt",
    "fmt_params",
    "tie_tolerance",
]

DTYPE = torch.float64
Nested = Any  # a float or a nested list of floats (or a tensor)


def floats(x: Nested) -> Any:
    """Nested python floats of x (for reprs that rebuild the problem)."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", DTYPE).tolist()
    if isinstance(x, (list, tuple)):
        return [floats(v) for v in x]
    return float(x)


def call_repr(name: str, **kwargs: Any) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def fmt(t: Tensor | float, digits: int = 6) -> str:
    """A compact string of a tensor's values ``[1, -2.5]`` (or of a float)."""
    if isinstance(t, Tensor):
        if t.ndim == 0:
            return f"{float(t):.{digits}g}"
        return "[" + ", ".join(fmt(v, digits) for v in t) + "]"
    return f"{float(t):.{digits}g}"


def fmt_params(params: Mapping[str, Tensor], digits: int = 6) -> str:
    inner = ", ".join(f"{k!r}: {fmt(v.detach().cpu(), digits)}" for k, v in params.items())
    return "{" + inner + "}"


def as_float64(x: Nested) -> Tensor:
    return torch.as_tensor(floats(x), dtype=DTYPE)


def tie_tolerance(values: Tensor, rtol: float) -> Tensor:
    """Absolute tie tolerance rtol·max(1, |max|) per row of values [..., n] → [..., 1]."""
    best = values.max(dim=-1, keepdim=True).values
    return rtol * best.abs().clamp_min(1.0)
