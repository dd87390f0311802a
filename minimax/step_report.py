"""`StepReport`: what one outer step of `minimax.MinMaxOptimizer` saw and did.

Public API::

    StepReport(robust_loss, norm, certificate, weights, forward, backward, seconds, ...)
        .went_up -> bool | None      the robust loss re-measured after the step is higher
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from minimax.inner.base import Candidates

__all__ = ["StepReport"]


@dataclass
class StepReport:
    """What one outer step saw and did.

    robust_loss: mean_b max_i g at the candidates, before the step (float).
    robust_loss_after: the same after the step, re-measured by running the inner solver again
        from the same random starts (None unless ``remeasure=True``).
    norm, certificate, weights: from the `Direction`.
    forward, backward: passes spent by the step (units of one pass over B examples).
    seconds: wall time of the step (without the re-measure).
    candidates: the `Candidates` the direction was built from (None for a skipped step).

    With a line search (``MinMaxOptimizer(step_size="armijo")``; None otherwise):
    lr: the accepted step η = t·lr (the first parameter group's lr; 0.0: no step taken).
    t: the accepted fraction of the optimizer's update u (0.0: θ and the optimizer state kept).
    trials: evaluations of R spent by the search; trial_forward, trial_backward: their passes,
        counted apart from ``forward``/``backward`` (and not on the engine's counter).
    slope: s, the slope of R along −u the search tested against (η·certificate for plain SGD
        with a certificate, else −⟨d, u⟩).
    certified_decrease: −c·t·s, the decrease the accepted step had to realise (0.0 for none).
    realised_decrease: R₀ − R(θ₀ − t·u) as the trials measured it; ``robust_loss_after`` is
        then R at the kept point.
    """

    robust_loss: float
    norm: float
    certificate: float | None
    weights: Tensor
    forward: int
    backward: int
    seconds: float
    robust_loss_after: float | None = None
    kkt: float | None = None
    skipped: bool = False
    candidates: Candidates | None = field(default=None, repr=False, compare=False)
    lr: float | None = None
    t: float | None = None
    trials: int | None = None
    trial_forward: int | None = None
    trial_backward: int | None = None
    slope: float | None = None
    certified_decrease: float | None = None
    realised_decrease: float | None = None

    @property
    def went_up(self) -> bool | None:
        if self.robust_loss_after is None:
            return None
        return self.robust_loss_after > self.robust_loss
