"""Divergence of the outer step: what counts as a non-finite step, checked once per step.

Public API::

    NON_FINITE_ERRORS                the step errors that mean "a value went NaN / Inf"
    checked_step(run, batch) -> StepReport    raises NonFiniteStateError on a non-finite step

A step diverged when the library raises `minimax.NonFiniteError` (a NaN or Inf in the
candidates' values, their gradients, the Gram matrix or the direction) or FloatingPointError,
or when its robust loss or ‖d‖ is NaN / Inf (host floats already: no extra sync). Other errors
are not divergence: a batch that is NaN on arrival is bad data, and its ValueError says so.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

import minimax

from .checkpoint import NonFiniteStateError
from .setup import Run, autocast

__all__ = ["NON_FINITE_ERRORS", "checked_step"]

#: errors of the outer step that mean "a non-finite value"
NON_FINITE_ERRORS: tuple[type[BaseException], ...] = (minimax.NonFiniteError, FloatingPointError)


def checked_step(run: Run, batch: tuple[Tensor, Tensor]) -> Any:
    """``run.optimizer.step(batch)``; a non-finite loss or direction is a `NonFiniteStateError`
    (raised before anything is written)."""
    try:
        with autocast(run.device, run.amp):
            report = run.optimizer.step(batch)
    except NON_FINITE_ERRORS as error:
        raise NonFiniteStateError(f"step {run.step + 1}: {error}") from error
    values = {"robust_loss": report.robust_loss, "norm": report.norm}
    bad = {k: v for k, v in values.items() if v is not None and not math.isfinite(v)}
    if bad:
        raise NonFiniteStateError(f"step {run.step + 1}: non-finite {bad}")
    return report
