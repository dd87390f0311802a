"""Divergence of the outer step: what counts as a non-finite step, checked once per step.

Public API::

    NON_FINITE_ERRORS                the step errors that mean "a value went NaN / Inf"
    checked_step(run, batch) -> StepReport    raises NonFiniteStateError on a non-finite step

The library's own non-finite error class is used when `minimax` exports one
(``minimax.NonFiniteError``), with ``FloatingPointError``; another ``ValueError`` counts when
its message names NaN or finiteness (the min-norm QP's refusal of a NaN Gram matrix). A step
whose robust loss or ‖d‖ is NaN / Inf counts too (the values are host floats already: no
extra sync).
"""

from __future__ import annotations

import math
import re
from typing import Any

from torch import Tensor

import minimax
from problems.training.checkpoint import NonFiniteStateError
from problems.training.setup import Run, autocast

__all__ = ["NON_FINITE_ERRORS", "checked_step"]

#: errors of the outer step that mean "a non-finite value": the library's own class when it has
#: one, and FloatingPointError; other ValueErrors count when they name NaN / Inf (the QP's)
NON_FINITE_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(minimax, "NonFiniteError", FloatingPointError), FloatingPointError}
)

_NAMES_NON_FINITE = re.compile(r"\bnan\b|finite|\binf\b", re.IGNORECASE)


def checked_step(run: Run, batch: tuple[Tensor, Tensor]) -> Any:
    """``run.optimizer.step(batch)``; a non-finite loss or direction is a `NonFiniteStateError`
    (raised before anything is written)."""
    try:
        with autocast(run.device, run.amp):
            report = run.optimizer.step(batch)
    except NON_FINITE_ERRORS as error:
        raise NonFiniteStateError(f"step {run.step + 1}: {error}") from error
    except ValueError as error:
        if _NAMES_NON_FINITE.search(str(error)):
            raise NonFiniteStateError(f"step {run.step + 1}: {error}") from error
        raise
    values = {"robust_loss": report.robust_loss, "norm": report.norm}
    bad = {k: v for k, v in values.items() if v is not None and not math.isfinite(v)}
    if bad:
        raise NonFiniteStateError(f"step {run.step + 1}: non-finite {bad}")
    return report
