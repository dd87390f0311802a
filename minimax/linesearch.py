"""Certified step sizes: a backtracking (Armijo) search on the measured robust objective.

A rule certifies a direction: R'(θ; −d) ≤ s < 0 (for DDi, s = −‖d‖²). The search turns that into
a step that keeps the promise: it accepts the largest t in {1, β, β², …} (at most ``max_trials``)
with

    R(θ − t·u) ≤ R(θ) + c · t · s,

u the optimizer's update (lr·d for plain SGD, so t·lr is the step η along d) and s the slope
promised along −u. Where R is exact (`Enumerate`, `Grid`) an accepted step decreases R by at least
c·t·|s|, and where no trial passes the step is not taken: R never increases. Where R comes from an
attack, the decrease is measured at the attack's re-run, not proven.

Written here rather than taken from scipy: ``scipy.optimize.line_search`` needs the gradient of a
smooth function at every trial, whereas the robust objective is a max (only its value is cheap) and
its slope is the certificate, fixed before the search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from minimax import checks

__all__ = ["Armijo", "LineSearchResult"]


@dataclass(frozen=True)
class LineSearchResult:
    """What one search tried and kept.

    t: the accepted fraction of the update (0.0: no step taken).
    trials: objective evaluations spent (each one forward for a finite max, one attack otherwise).
    slope: s, the promised slope of R along −u (per unit of t).
    bound: R(θ) + c·t·s for the accepted t (R(θ) when no step was taken): the certified value.
    value: R at the kept point (R(θ) when no step was taken).
    decrease: R(θ) − value, the realised decrease (≥ c·t·|s| when a step was taken).
    """

    t: float
    trials: int
    slope: float
    bound: float
    value: float
    decrease: float

    @property
    def accepted(self) -> bool:
        return self.t > 0


@dataclass(frozen=True)
class Armijo:
    """Backtracking search: the largest t ∈ {1, β, β², …} with R(θ − t·u) ≤ R(θ) + c·t·s.

    Args:
        c: the fraction of the promised decrease a step must realise, in (0, 1) (1e-4: the
            textbook value, Nocedal & Wright §3.1).
        shrink: β in (0, 1), the factor between trials.
        max_trials: the most evaluations of R per step; when none passes, no step is taken.

    A slope s ≥ 0 (or not finite) promises no descent: the search takes no step and spends no
    evaluation.
    """

    c: float = 1e-4
    shrink: float = 0.5
    max_trials: int = 30

    def __post_init__(self) -> None:
        for name in ("c", "shrink"):
            value = checks.real_number(name, getattr(self, name), positive=True)
            if value >= 1:
                raise ValueError(f"Armijo {name} must be in (0, 1), got {value!r}")
        checks.integer("max_trials", self.max_trials, minimum=1, maximum=1000)

    def search(
        self, objective: Callable[[float], float], r0: float, slope: float
    ) -> LineSearchResult:
        """Search along −u.

        Args:
            objective: t ↦ R(θ − t·u); it leaves θ at θ − t·u (the caller keeps the last trial
                when it is accepted and restores θ otherwise).
            r0: R(θ), measured as the trials are.
            slope: s, the certified slope along −u (negative for a descent direction).
        """
        if not (math.isfinite(slope) and slope < 0 and math.isfinite(r0)):
            return LineSearchResult(0.0, 0, slope, r0, r0, 0.0)
        t = 1.0
        for trial in range(1, self.max_trials + 1):
            value = float(objective(t))
            bound = r0 + self.c * t * slope
            if value <= bound:  # NaN fails: a non-finite trial is never accepted
                return LineSearchResult(t, trial, slope, bound, value, r0 - value)
            t *= self.shrink
        return LineSearchResult(0.0, self.max_trials, slope, r0, r0, 0.0)
