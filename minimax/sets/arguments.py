"""The argument policy of every perturbation set: the tensors passed to ``project``,
``ascent_step`` and ``contains`` are floating point and finite, and a step size is finite and
≥ 0; otherwise a ValueError or TypeError names the argument.

`PerturbationSet` applies it to every subclass (its own sets and a user's) through
``__init_subclass__``. The library's inner solvers call the sets inside `trusted` (their
iterates are checked once per call instead, by `minimax.nonfinite`), so no check runs per
iteration; one fused ``isfinite`` (one host sync) runs per public call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
from torch import Tensor

from minimax import checks

__all__ = ["check_set_arguments", "checked_method", "trusted"]

F = TypeVar("F", bound=Callable[..., Any])

_TRUSTED: ContextVar[bool] = ContextVar("minimax_sets_trusted", default=False)

#: the tensor arguments of each checked method, by position after ``self``
CHECKED: dict[str, tuple[str, ...]] = {
    "project": ("delta", "x"),
    "ascent_step": ("delta", "grad", "step_size"),
    "contains": ("delta", "x"),
}


@contextmanager
def trusted() -> Iterator[None]:
    """Within this block sets skip the argument checks (for the library's own inner loops)."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def check_set_arguments(named: dict[str, object]) -> None:
    """Check the named tensors (floating point, all finite: one fused check) and a step size."""
    tensors = {}
    for name, value in named.items():
        if value is None and name != "step_size":
            continue
        if name == "step_size" and not isinstance(value, Tensor):
            checks.real_number(name, value, nonnegative=True)
            continue
        tensors[name] = checks.float_tensor(name, value)
    if not tensors:
        return
    first = next(iter(tensors.values())).device
    flags = torch.stack([torch.isfinite(t).all().to(first) for t in tensors.values()])
    if bool(flags.all()):
        if "step_size" in tensors and bool((tensors["step_size"] < 0).any()):
            raise ValueError("step_size must be ≥ 0 for every example")
        return
    for name, t in tensors.items():
        checks.finite_tensor(name, t)


def checked_method(name: str, fn: F) -> F:
    """``fn`` (a set's method ``name``) with its tensor arguments checked, unless `trusted`."""
    names = CHECKED[name]

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _TRUSTED.get():
            named = dict(zip(names, args))
            named.update({k: v for k, v in kwargs.items() if k in names})
            check_set_arguments(named)
        return fn(self, *args, **kwargs)

    wrapper.__minimax_checked__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
