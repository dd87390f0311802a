"""`DDi`: Danskin's Descent Direction, the min-norm element of the hull of candidate gradients.

Public API::

    DDi(*, per_example=False, tolerance=None, normalize=False, method="wolfe")
        .tau -> the tolerance in force now; .state_dict(), .load_state_dict(state)
    ddi_per_example(**kwargs) -> DDi(per_example=True, **kwargs)   (the "ddi-example" rule)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.base import Candidates
from minimax.minnorm import MinNormResult, min_norm_product_weights, min_norm_weights
from minimax.problem import Batch
from minimax.rules.base import Direction
from minimax.rules.gram import GramRule, GramVectors
from minimax.tolerance import ShrinkingTolerance

__all__ = ["DDi", "ddi_per_example"]


class DDi(GramRule):
    """Danskin's Descent Direction: the min-norm element of the hull of candidate gradients.

    Args:
        per_example: ``False`` (default): one weight per restart, the hull of the m batch-mean
            gradients (as in the paper). ``True``: the exact Danskin set of the batch loss, the
            Minkowski sum of the per-example hulls; a QP over a product of B simplices (the
            engine forms its m·B per-example Gramian: `Engine(gramian=...)`).
        tolerance: keep only ε-maximizers: candidates whose value is within τ of the best (per
            restart mean at batch level, per example otherwise). None keeps all. A
            `minimax.ShrinkingTolerance` makes τ shrink as ‖d‖ does (ε-steepest descent): DDi
            reads its ``value`` and updates it with ‖d‖ after each direction; its τ is the rule's
            state (`state_dict`).
        normalize: return d / ‖d‖ (the norm field keeps ‖d‖ before normalizing).
        method: the min-norm solver that weighs K, a name in `minimax.minnorm.METHODS` (batch
            level; per example the product-of-simplices solver).

    How K and d are formed (layerwise or materialized, through the scoring graph or not, the
    memory budget, data parallelism) is the engine's choice (`minimax.engine.Engine`).
    Per-example DDi and the batch-level layerwise Gramian are not data-parallel.
    """

    data_parallel = True

    def __init__(
        self,
        *,
        per_example: bool = False,
        tolerance: float | ShrinkingTolerance | None = None,
        normalize: bool = False,
        method: str = "wolfe",
    ) -> None:
        if tolerance is not None and not isinstance(tolerance, ShrinkingTolerance):
            tolerance = checks.real_number("tolerance", tolerance, nonnegative=True)
        self.per_example = per_example
        self.tolerance = tolerance
        self.normalize = normalize
        self.method = method
        # per-example rows need their own forward: no scoring graph there
        self.need = "none" if per_example else "all"

    def __repr__(self) -> str:
        opts = [f"per_example={self.per_example}"]
        if isinstance(self.tolerance, ShrinkingTolerance):
            opts.append(f"tolerance={self.tolerance!r}")
        elif self.tolerance is not None:
            opts.append(f"tolerance={self.tolerance:g}")
        if self.normalize:
            opts.append("normalize=True")
        if self.method != "wolfe":
            opts.append(f"method={self.method!r}")
        return f"DDi({', '.join(opts)})"

    @property
    def tau(self) -> float | None:
        """The tolerance in force now (a `ShrinkingTolerance`'s current value), or None."""
        if isinstance(self.tolerance, ShrinkingTolerance):
            return self.tolerance.value
        return self.tolerance

    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        direction = super().direction(engine, params, batch, candidates)
        if isinstance(self.tolerance, ShrinkingTolerance):
            direction.extras["tolerance"] = torch.tensor(self.tolerance.value, dtype=torch.float64)
            norm = float(direction.norm)
            if math.isfinite(norm):  # a non-finite d is refused downstream
                self.tolerance.update(norm)
        return direction

    def state_dict(self) -> dict[str, Any]:
        """A `ShrinkingTolerance`'s current τ (empty for a fixed tolerance)."""
        if isinstance(self.tolerance, ShrinkingTolerance):
            return {"tolerance": self.tolerance.state_dict()}
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(self.tolerance, ShrinkingTolerance):
            super().load_state_dict(state)
            return
        if not isinstance(state, Mapping):
            raise TypeError(f"{self!r}: a rule's state must be a dict, got {type(state).__name__}")
        if set(state) != {"tolerance"}:
            raise ValueError(
                f"{self!r}: expected a state with key 'tolerance', got keys {sorted(state)}"
            )
        self.tolerance.load_state_dict(state["tolerance"])

    def weigh(
        self, gram_matrix: Tensor, sizes: list[int], precision: torch.dtype | None = None
    ) -> MinNormResult:
        if self.per_example:
            return min_norm_product_weights(gram_matrix, sizes, precision=precision)
        return min_norm_weights(gram_matrix, method=self.method, precision=precision)

    def gradients(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        if self.per_example:
            return self._per_example(engine, params, batch, candidates)
        keep = torch.ones(candidates.m, dtype=torch.bool)
        tau = self.tau
        if tau is not None:
            means = engine.batch_means(candidates.values)
            keep = (means >= means.max() - tau).cpu()
        k, direction = engine.gramian(
            params, batch, candidates.deltas, keep, per_example=False, what=repr(self)
        )
        return GramVectors(
            None, [int(keep.sum())], keep, gram=k, direction=direction, precision=_dtype(params)
        )

    def _per_example(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        problem = engine.problem
        if problem.examples_coupled:
            raise ValueError(
                "DDi(per_example=True) needs a batch objective that is a sum of per-example "
                "maxima, "
                f"but in {problem!r} the examples are coupled (train-mode BatchNorm statistics): "
                "use DDi(per_example=False), ModuleProblem(..., batchnorm='eval'), or a model "
                "without BatchNorm (e.g. GroupNorm)"
            )
        values = candidates.values.T  # [B, m]; blocks are examples
        tau = self.tau
        if tau is not None:  # keep each example's ε-maximizers
            mask = values >= values.max(dim=1, keepdim=True).values - tau
        else:
            mask = torch.ones_like(values, dtype=torch.bool)
        sizes = [int(s) for s in mask.sum(dim=1).tolist()]
        k, direction = engine.gramian(
            params, batch, candidates.deltas, mask, per_example=True, what=repr(self)
        )
        return GramVectors(None, sizes, mask, gram=k, direction=direction, precision=_dtype(params))


def _dtype(params: Mapping[str, Tensor]) -> torch.dtype:
    """The dtype θ's gradients (and so the entries of their Gram matrix) carry rounding of."""
    return next(iter(params.values())).dtype


def ddi_per_example(**kwargs: Any) -> DDi:
    """DDi over the exact Danskin set of the batch loss (a product of per-example simplices)."""
    return DDi(per_example=True, **kwargs)
