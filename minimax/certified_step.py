"""The certified step of `minimax.MinMaxOptimizer` (``step_size``): the optimizer's update u,
the slope s of the robust objective R along −u, and the `minimax.Armijo` search along −u, with θ
and the optimizer's state restored bitwise when no trial passes.

Public API::

    step_size_option(value) -> Armijo | None       None, "armijo" or an Armijo, checked
    slope(direction, theta0, update, lr) -> float  s: lr·certificate for plain SGD, else −⟨d, u⟩
    certified_step(optimizer, params, step_size, direction, r0, measure, passes) -> dict
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from minimax.engine.passes import PassCounter
from minimax.linesearch import Armijo, LineSearchResult
from minimax.rules import Direction

__all__ = ["certified_step", "slope", "step_size_option"]


def step_size_option(value: object) -> Armijo | None:
    """None, ``"armijo"`` (the default `Armijo`) or an `Armijo`, checked."""
    if value is None or isinstance(value, Armijo):
        return value
    if value == "armijo":
        return Armijo()
    raise ValueError(f"step_size must be None, 'armijo' or a minimax.Armijo, got {value!r}")


def _sq(tensors: Mapping[str, Tensor]) -> float:
    return sum((float((v.double() ** 2).sum()) for v in tensors.values()), start=0.0)


def slope(
    direction: Direction, theta0: Mapping[str, Tensor], update: Mapping[str, Tensor], lr: float
) -> float:
    """s, the slope of R along −u promised to the search: η·certificate where u = η·d (plain
    SGD: u = θ₀ − θ₁ equals lr·d up to the rounding of θ₀ − lr·d) and the rule certified d,
    else −⟨d, u⟩ (float64)."""
    d = direction.vector
    dot = sum((float((d[k].double() * u.double()).sum()) for k, u in update.items()), start=0.0)
    if direction.certificate is not None and lr > 0:
        diff = _sq({k: u.double() - lr * d[k].double() for k, u in update.items()})
        first = next(iter(update.values()))
        eps = torch.finfo(first.dtype).eps
        scale = math.sqrt(_sq(theta0)) + math.sqrt(_sq(update))
        if math.isfinite(diff) and math.sqrt(diff) <= 8 * eps * scale:
            return lr * float(direction.certificate)
    return -dot


def certified_step(
    optimizer: torch.optim.Optimizer,
    params: Mapping[str, Tensor],
    step_size: Armijo,
    direction: Direction,
    r0: float,
    measure: Callable[[], float],
    passes: PassCounter,
) -> dict[str, Any]:
    """Take the optimizer's step (its ``.grad`` already holds d), then search along −u.

    ``measure()`` is R at the current θ (the inner solver re-run from the step's random starts);
    its passes are counted apart and taken off ``passes``. r0: R at θ₀. Returns the
    `minimax.StepReport` fields of the search and ``after``, R at the kept point.
    """
    with torch.no_grad():
        theta0 = {k: p.detach().clone() for k, p in params.items()}
    saved_state = {p: copy.deepcopy(v) for p, v in optimizer.state.items()}
    optimizer.step()
    with torch.no_grad():
        theta1 = {k: p.detach().clone() for k, p in params.items()}
        update = {k: theta0[k] - theta1[k] for k in params}
    lr = float(optimizer.param_groups[0]["lr"])
    s = slope(direction, theta0, update, lr)
    spent = [0, 0]

    def objective(t: float) -> float:
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(theta1[k] if t == 1.0 else theta0[k] - t * update[k])
        before = passes.snapshot()
        try:
            return measure()
        finally:
            now = passes.snapshot()
            spent[0] += now[0] - before[0]
            spent[1] += now[1] - before[1]
            passes.restore(before)

    result: LineSearchResult = step_size.search(objective, r0, s)
    if not result.accepted:  # no step: θ₀ and the optimizer's state, bitwise
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(theta0[k])
        optimizer.state.clear()
        optimizer.state.update(saved_state)
    # accepted: the last trial is the accepted one, θ is already θ₀ − t·u (θ₁ for t = 1)
    certified = -step_size.c * result.t * s if result.accepted else 0.0
    return {
        "lr": result.t * lr,
        "t": result.t,
        "trials": result.trials,
        "trial_forward": spent[0],
        "trial_backward": spent[1],
        "slope": s,
        "certified_decrease": certified,
        "realised_decrease": result.decrease,
        "after": result.value,
    }
