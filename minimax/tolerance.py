"""The ε-active tolerance of DDi: fixed, or shrinking as the direction shortens.

DDi(tolerance=τ) keeps the candidates within τ of the best and descends along the min-norm point
d_τ of their gradients' hull: ε-steepest descent for a max of smooth pieces (Demyanov and
Malozemov, "Introduction to Minimax", 1974; Kiwiel, "Methods of Descent for Nondifferentiable
Optimization", 1985). A fixed τ stops at τ-stationary points: ‖d_τ‖ small because pieces up to
τ below the max are in the hull, though the true steepest direction may still descend.

`ShrinkingTolerance` is the classical remedy: when the certified decrease rate ‖d_τ‖² falls below
κ·τ, the τ-active pieces no longer allow progress at the resolution τ, so τ ← β·τ (never below
``minimum``). Each τ_k is then either kept while the method makes progress at least κ·τ_k per unit
step, or shrunk; with a step size that realises a fixed fraction of the certified decrease (the
Armijo search of `minimax.linesearch`), R decreases by a summable amount only if τ_k → 0 and
‖d_{τ_k}‖ → 0 along the shrinking steps, so accumulation points are stationary (Kiwiel 1985,
ch. 2). ``minimum`` > 0 trades that limit for a floor, which rounding needs: pieces closer than
the loss's rounding error cannot be told apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from minimax import checks

__all__ = ["ShrinkingTolerance"]


class ShrinkingTolerance:
    """τ_{k+1} = max(β·τ_k, τ_min) when ‖d_k‖² ≤ κ·τ_k, else τ_k.

    Args:
        initial: τ_0 > 0, in the units of the objective.
        shrink: β in (0, 1).
        ratio: κ > 0, in (units of ‖d‖²) per unit of the objective.
        minimum: τ_min ≥ 0, the floor.

    `value` is the current τ; `update(norm)` applies the rule after a step whose direction had
    norm ‖d‖ and returns the new τ. `state_dict` / `load_state_dict` save and restore τ.
    """

    def __init__(
        self, initial: float, *, shrink: float = 0.5, ratio: float = 1.0, minimum: float = 0.0
    ) -> None:
        self.initial = checks.real_number("initial", initial, positive=True)
        self.shrink = checks.real_number("shrink", shrink, positive=True)
        if self.shrink >= 1:
            raise ValueError(f"shrink must be in (0, 1), got {shrink!r}")
        self.ratio = checks.real_number("ratio", ratio, positive=True)
        self.minimum = checks.real_number("minimum", minimum, nonnegative=True)
        if self.minimum > self.initial:
            raise ValueError(f"minimum ({minimum!r}) must be at most initial ({initial!r})")
        self.value = self.initial

    def __repr__(self) -> str:
        return (
            f"ShrinkingTolerance({self.initial:g}, shrink={self.shrink:g}, ratio={self.ratio:g}, "
            f"minimum={self.minimum:g})"
        )

    def update(self, norm: float) -> float:
        """Apply the rule after a direction of norm ``norm`` (‖d‖ ≥ 0); returns the new τ."""
        norm = float(norm)
        if not (math.isfinite(norm) and norm >= 0):
            raise ValueError(f"norm must be finite and ≥ 0, got {norm!r}")
        if norm * norm <= self.ratio * self.value:
            self.value = max(self.shrink * self.value, self.minimum)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "value" not in state:
            raise ValueError("not a ShrinkingTolerance state_dict: missing 'value'")
        value = checks.real_number("value", state["value"], nonnegative=True)
        if value < self.minimum or value > self.initial:
            raise ValueError(
                f"tolerance {value!r} is outside [minimum, initial] = [{self.minimum:g}, "
                f"{self.initial:g}]: the state belongs to another ShrinkingTolerance"
            )
        self.value = value
