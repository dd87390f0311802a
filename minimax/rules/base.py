"""The interface of every rule: `Direction` (what a rule returns) and `Rule`, plus the
normalisation the library's rules share.

Public API::

    Direction(vector, weights, norm, certificate=None, kkt=None, rule="", extras={})
    Rule: need, finite_only, data_parallel; rule(engine, params, batch, candidates) -> Direction
    normalized(d, cert, normalize, scale=None) -> (d or d/‖d‖, ‖d‖, certificate)
    one_hot(index, m) -> float64 one-hot weights
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from minimax.engine import Engine, as_engine
from minimax.engine.gradients import flat_norm
from minimax.inner.base import Candidates
from minimax.problem import Batch, Problem

__all__ = ["Direction", "Rule", "normalized", "one_hot"]


@dataclass(kw_only=True)
class Direction:
    """An outer direction d; the step is θ ← θ − η d.

    vector: d, a dict shaped like θ.
    weights: float64 weights of the candidate gradients that make d: [m] (batch-level) or [B, m]
        (per example); entries of dropped candidates are 0.
    norm: ‖d‖ (float64 scalar) of the vector itself (before normalizing), the stationarity
        measure.
    certificate: the Danskin bound on the directional derivative of the candidates' max along −d,
        max_i ⟨−d, g_i⟩ (batch-level) or Σ_b max_i ⟨−d, g_{b,i}⟩ (per example); None where the
        rule did not compute the candidate gradients. ≤ −‖d‖² certifies descent for DDi.
    kkt: the min-norm solver's KKT residual (DDi only).
    """

    vector: dict[str, Tensor]
    weights: Tensor
    norm: Tensor
    certificate: Tensor | None = None
    kkt: Tensor | None = None
    rule: str = ""
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __repr__(self) -> str:
        cert = "None" if self.certificate is None else f"{float(self.certificate):.4g}"
        return f"Direction({self.rule}, norm={float(self.norm):.4g}, certificate={cert})"


class Rule(ABC):
    """A descent-direction rule: ``rule(engine, params, batch, candidates) -> Direction``.

    ``engine`` is a `minimax.engine.Engine` (a `Problem` is taken as its default engine).
    `need`: which candidate gradients the rule takes, so that the engine can keep the scoring
    forward's graph for them: ``"one"`` (one candidate's), ``"all"`` (every candidate's batch
    gradient) or ``"none"`` (anything else: its own forwards).
    `finite_only`: the rule needs a finite inner problem (pure strategies from `Enumerate`), so
    trainers over continuous perturbation sets leave it out of their choices.
    `data_parallel`: the rule has a form over ranks (an engine with a `Communicator`).
    """

    need: str = "none"
    finite_only: bool = False
    data_parallel: bool = False

    def __call__(
        self,
        engine: Engine | Problem,
        params: Mapping[str, Tensor],
        batch: Batch,
        candidates: Candidates,
    ) -> Direction:
        return self.direction(as_engine(engine), params, batch, candidates)

    @abstractmethod
    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        """What a rule defines: the `Direction` from the candidates."""

    def state_dict(self) -> dict[str, Any]:
        """What the rule carries from one step to the next (empty: a stateless rule)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict`; a stateless rule accepts only an empty state."""
        if not isinstance(state, Mapping):
            raise TypeError(f"{self!r}: a rule's state must be a dict, got {type(state).__name__}")
        if state:
            raise ValueError(
                f"{self!r} keeps no state, got one with keys {sorted(state)}: it was saved by "
                "another rule"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def one_hot(index: Tensor, m: int) -> Tensor:
    """Float64 one-hot weights [*index.shape, m]."""
    return torch.nn.functional.one_hot(index, m).to(torch.float64)


def normalized(
    d: dict[str, Tensor], cert: Tensor | None, normalize: bool, scale: Tensor | None = None
) -> tuple[dict[str, Tensor], Tensor, Tensor | None]:
    """(d or d/‖d‖, ‖d‖, certificate rescaled alike); ‖d‖ is the norm of the vector itself.

    ``scale``: the size of the vectors d was combined from (Σ_blocks max_i ‖g_i‖). A d at the
    rounding level of that scale (‖d‖ ≤ 8·u·scale, u the unit roundoff of d's dtype) is
    numerically 0, a stationary point: ``normalize`` leaves it as it is rather than turning the
    rounding noise into a unit step.
    """
    norm = flat_norm(d)
    floor = 0.0
    if scale is not None and d:
        u = torch.finfo(next(iter(d.values())).dtype).eps
        floor = 8 * u * float(scale)
    if normalize and float(norm) > floor:
        d = {k: v / norm.to(v.dtype) for k, v in d.items()}
        cert = None if cert is None else cert / norm
    return d, norm, cert
