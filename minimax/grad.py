"""Fill ``.grad`` from a rule's direction: the building block of a custom training loop.

opt.zero_grad()
minimax.backward(problem, (x, y), inner, rule)   # .grad ← d, the rule's direction
opt.step()                                         # θ ← θ − lr·d for SGD

`MinMaxOptimizer.step` runs the same code (`minimax.optim.apply_direction`), after the
optimizer's ``zero_grad(set_to_none=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.base import InnerSolver
from minimax.optim import _engine, apply_direction, descent_direction
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
    engine: Engine | None = None,
) -> Direction:
    """Find candidates with ``inner``, form ``rule``'s direction d and add it to each parameter's
    ``.grad`` (like ``loss.backward()``: call ``optimizer.zero_grad()`` first); returns the
    `Direction`.

    The lines it stands for::

        direction, candidates = minimax.descent_direction(problem, None, batch, inner, rule)
        for name, p in problem.parameters().items():
            p.grad = direction.vector[name].to(p.dtype)               # added to .grad
        engine.update_statistics(batch, candidates.best_deltas())     # BatchNorm running stats

    Args:
        problem: the min-max problem; ``params`` (default: ``problem.parameters()``) get the
            gradient.
        batch: the batch, e.g. ``(x, y)`` for a `ModuleProblem`.
        inner: the inner solver (e.g. ``PGD(10, 2/255, restarts=10)``).
        rule: the direction rule (``Danskin()``, ``MaxLoss()``, ``DDi()``), or its name in
            `minimax.extend.RULES` (built with its defaults).
        generator: the inner solver's random starts (default: its own generator).
        update_statistics: update running statistics (BatchNorm) once, from one no-grad forward
            at each example's worst candidate, and synchronise them over ranks, as
            `MinMaxOptimizer` does.
        engine: the execution engine (`minimax.Engine`); default: the problem's.

    Raises:
        minimax.NonFiniteError: (a FloatingPointError) when d or the candidates' values have a
            non-finite entry, found by one fused check; no ``.grad`` and no running statistic
            is touched then.
    """
    rule = checks.step_pieces(problem, inner, rule)
    engine = _engine(problem, engine)
    params = problem.parameters() if params is None else params
    direction, candidates = descent_direction(
        problem, params, batch, inner, rule, generator=generator, engine=engine
    )
    apply_direction(
        engine, params, batch, direction, candidates, update_statistics=update_statistics
    )
    return direction
