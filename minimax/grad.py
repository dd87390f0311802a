"""Fill ``.grad`` from a rule's direction: the building block of a custom training loop.

opt.zero_grad()
minimax.backward(problem, (x, y), inner, rule)   # .grad ← d, the rule's direction
opt.step()                                         # θ ← θ − lr·d for SGD
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from minimax import checks
from minimax.inner.base import InnerSolver
from minimax.nonfinite import check_direction
from minimax.optim import descent_direction
from minimax.problem import Batch, Problem
from minimax.rules import Direction, Rule

__all__ = ["backward"]


def backward(
    problem: Problem,
    batch: Batch,
    inner: InnerSolver,
    rule: Rule | str,
    *,
    params: Mapping[str, Tensor] | None = None,
    generator: torch.Generator | None = None,
    update_statistics: bool = True,
) -> Direction:
    """Find candidates with ``inner``, form ``rule``'s direction d and add it to each parameter's
    ``.grad`` (like ``loss.backward()``: call ``optimizer.zero_grad()`` first); returns the
    `Direction`.

    The four lines it stands for::

        direction, candidates = minimax.descent_direction(problem, None, batch, inner, rule)
        for name, p in problem.parameters().items():
            p.grad = direction.vector[name].to(p.dtype)
        problem.update_statistics(batch, candidates.best_deltas())   # BatchNorm running stats

    Args:
        problem: the min-max problem; ``params`` (default: ``problem.parameters()``) get the
            gradient.
        batch: the batch, e.g. ``(x, y)`` for a `ModuleProblem`.
        inner: the inner solver (e.g. ``PGD(10, 2/255, restarts=10)``).
        rule: the direction rule (``Danskin()``, ``MaxLoss()``, ``DDi()``), or its name in
            `minimax.RULES` (built with its defaults).
        generator: the inner solver's random starts (default: its own generator).
        update_statistics: update running statistics (BatchNorm) once, from one no-grad forward
            at each example's worst candidate, as `MinMaxOptimizer` does.

    Raises:
        minimax.NonFiniteError: (a FloatingPointError) when d or the candidates' values have a
            non-finite entry, found by one fused check; no ``.grad`` and no running statistic
            is touched then.
    """
    rule = checks.step_pieces(problem, inner, rule)
    params = problem.parameters() if params is None else params
    direction, candidates = descent_direction(
        problem, params, batch, inner, rule, generator=generator
    )
    check_direction(direction.vector, candidates.values, rule=direction.rule)
    for name, p in params.items():
        d = direction.vector[name].detach().to(p.dtype)
        p.grad = d.clone() if p.grad is None else p.grad + d
    if update_statistics and problem.has_running_statistics:
        problem.update_statistics(batch, candidates.best_deltas())
    return direction
