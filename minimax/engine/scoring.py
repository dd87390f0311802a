"""`ScoringGraph`: the autograd graph of the forward that scored an inner solver's candidates."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["ScoringGraph"]


@dataclass(frozen=True)
class ScoringGraph:
    """Kept by the engine so that the candidates' gradients need no forward of their own.

    params: the θ leaves (requires_grad) the scoring forward used;
    values: one [B] tensor per candidate, with its own graph (a backward from one of them runs
        only that candidate's graph);
    deltas: the candidates [m, B, ...] it belongs to (matched by identity).
    """

    params: dict[str, Tensor]
    values: list[Tensor]
    deltas: Tensor
