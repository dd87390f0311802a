"""The non-finite policy: a NaN or Inf in a direction, a robust loss or an objective value is an
error (`NonFiniteError`), found by one fused check and raised before anything is changed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from minimax.checks import all_finite

__all__ = [
    "NonFiniteError",
    "check_candidates",
    "check_direction",
    "check_gram",
    "check_state",
    "check_values",
]


class NonFiniteError(FloatingPointError):
    """A NaN or Inf where a finite value is needed; ``what`` names it (e.g. ``"direction"``,
    ``"robust loss"``, ``"objective values"``) and ``where`` lists the parameters or fields."""

    def __init__(self, message: str, *, what: str, where: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.what = what
        self.where = where


def check_direction(vector: Mapping[str, Tensor], values: Tensor | None, *, rule: str = "") -> None:
    """Raise `NonFiniteError` unless every entry of the direction ``vector`` (and of the
    candidates' ``values`` [m, B], the robust loss's inputs) is finite.

    One fused check: a stacked ``isfinite(...).all()`` per tensor, reduced on the device and read
    once (one host sync); the failure path alone looks further to name the culprits.
    """
    flags = [torch.isfinite(v).all() for v in vector.values()]
    if values is not None:
        flags.append(torch.isfinite(values).all().to(flags[0].device if flags else values.device))
    if not flags or bool(torch.stack([f.to(flags[0].device) for f in flags]).all()):
        return
    bad = tuple(k for k, v in vector.items() if not bool(torch.isfinite(v).all()))
    if bad:
        raise NonFiniteError(
            f"the {rule or 'rule'}'s direction is not finite in {list(bad[:5])}: parameters and "
            "optimizer state left as they were (check the loss for overflow, lower the learning "
            "rate, or pass nonfinite='skip')",
            what="direction",
            where=bad,
        )
    raise NonFiniteError(
        "the robust loss is not finite (NaN or Inf among the candidates' values): parameters and "
        "optimizer state left as they were (check the loss for overflow, or lower the learning "
        "rate)",
        what="robust loss",
    )


def check_values(values: Tensor, *, solver: str) -> None:
    """Raise `NonFiniteError` unless the objective values [m, B] an inner solver found are all
    finite (one check per call)."""
    if all_finite(values):
        return
    n = int((~torch.isfinite(values)).sum())
    raise NonFiniteError(
        f"{solver}: the objective values are not finite ({n} of {values.numel()} NaN or Inf): "
        "g(θ, δ) overflowed or θ is not finite; check the loss and the parameters",
        what="objective values",
    )


def check_candidates(deltas: Tensor, *, solver: str) -> None:
    """Raise `NonFiniteError` unless the candidates δ [m, B, ...] an inner solver found are all
    finite (a search whose caller reads only the deltas: their values were not computed)."""
    if all_finite(deltas):
        return
    raise NonFiniteError(
        f"{solver}: the candidates δ are not finite (NaN or Inf): the gradient of g(θ, δ) "
        "overflowed or θ is not finite; check the loss and the parameters",
        what="candidates",
    )


def check_gram(k: Tensor, what: str) -> None:
    """Raise `NonFiniteError` unless the Gram matrix K of the candidate gradients is finite
    (the QP reads K on the host anyway: the same sync)."""
    if bool(torch.isfinite(k).all()):
        return
    raise NonFiniteError(
        f"{what}: the candidate gradients are not finite (NaN or Inf in their Gram matrix); "
        "check the loss for overflow, or lower the learning rate",
        what="gradients",
    )


def _non_finite_paths(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, Tensor):
        if (value.is_floating_point() or value.is_complex()) and not bool(
            torch.isfinite(value).all()
        ):
            out.append(path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            out.append(path)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _non_finite_paths(v, f"{path}[{k!r}]", out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _non_finite_paths(v, f"{path}[{i}]", out)


def check_state(state: Any, *, what: str) -> None:
    """Raise ValueError if a state_dict holds a NaN or Inf (a tensor, a float, at any depth):
    loading it would make the next step non-finite. Names the first entries found."""
    bad: list[str] = []
    _non_finite_paths(state, "state", bad)
    if bad:
        raise ValueError(
            f"{what} holds NaN or Inf at {bad[:3]}{' ...' if len(bad) > 3 else ''}: refusing to "
            "load it (the next step would be non-finite); nothing was changed. Load an earlier, "
            "finite state."
        )
