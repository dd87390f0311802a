"""Early stopping of an attack, per example: when its iterates cycle or its best value stalls.

Public: `EarlyStop` (the rule's settings), `Stall` (iterations since the best value last
increased), `ActiveRows` (the sub-batch of the examples still attacked, indexed once per change).
PGD's cycle detection itself is `minimax.inner.pgd` (it reads the final iterate off the cycle).

The cycle rule follows Doldo, Everett, Khanna, Nguyen & Raff, "Stop Walking in Circles! Bailing
Out Early in Projected Gradient Descent", CVPR 2025 (arXiv:2503.19347): PGD with a fixed step
size is a deterministic map δ_t ↦ δ_{t+1}, so once δ_t equals an earlier iterate every later one
repeats an earlier one too, and stopping there loses nothing. The stall rule (no increase of the
best value for ``patience`` iterations) is a heuristic: it can stop a search that would have
improved later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from minimax import checks
from minimax.problem import Batch

__all__ = ["ActiveRows", "EarlyStop", "Stall"]


@dataclass(frozen=True)
class EarlyStop:
    """When an attack stops searching an example.

    patience: stop after this many consecutive iterations (queries for Square) without an
        increase of the example's best value (None: never by stalling).
    cycles: stop once an iterate equals one of the last ``window`` iterates (exact for PGD with
        a fixed step size; see the module docstring).
    window: how many past iterates the cycle rule compares with.
    """

    patience: int | None = None
    cycles: bool = True
    window: int = 8

    def __post_init__(self) -> None:
        if self.patience is not None:
            checks.integer("patience", self.patience, minimum=1)
        checks.integer("window", self.window, minimum=1)

    @staticmethod
    def scaled(budget: int, fraction: float, floor: int) -> int:
        """A patience of ``max(floor, ⌈fraction · budget⌉)`` iterations."""
        return max(int(floor), math.ceil(fraction * budget))


class Stall:
    """Iterations since each candidate's best value last increased; ``stalled`` after
    ``patience`` of them."""

    def __init__(self, like: Tensor, patience: int | None) -> None:
        self.patience = patience
        self.count = torch.zeros_like(like, dtype=torch.long)

    def update(self, improved: Tensor) -> Tensor:
        """Count one iteration (reset where ``improved``); returns the stalled mask."""
        self.count = torch.where(improved, 0, self.count + 1)
        if self.patience is None:
            return torch.zeros_like(improved)
        return self.count >= self.patience

    def update_rows(self, rows: Tensor, improved: Tensor) -> Tensor:
        """`update` for the entries ``rows`` only (the others are not counted)."""
        self.count[rows] = torch.where(improved, 0, self.count[rows] + 1)
        if self.patience is None:
            return torch.zeros_like(improved)
        return self.count[rows] >= self.patience


class ActiveRows:
    """The examples of a classifier's batch (x, y) still attacked: their indices ``rows`` [r]
    and sub-batch (indexed once per change, so that the problem checks it once)."""

    def __init__(self, batch: Batch) -> None:
        x, _ = batch
        self.full = batch
        self.size = int(x.shape[0])
        self.rows = torch.arange(self.size, device=x.device)
        self.batch = batch

    @property
    def everything(self) -> bool:
        return int(self.rows.numel()) == self.size

    def update(self, active: Tensor) -> int:
        """Keep the examples where ``active`` [B]; returns how many remain."""
        n = int(active.sum())
        if n != self.rows.numel():
            x, y = self.full
            self.rows = torch.nonzero(active).squeeze(1)
            self.batch = (x[self.rows], y[self.rows])
        return n
