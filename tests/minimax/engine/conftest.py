"""Fixtures of the engine's tests.

- ``tiny_problem() -> (ModuleProblem, (x [5, 3], y [5]))``: a float32 MLP 3 → 4 → 3 (tanh) under an
  L∞ ball of radius 0.1, its weights and data drawn after ``torch.manual_seed(0)``; a fresh one
  per call.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import minimax as mm


def _tiny_problem() -> tuple[mm.ModuleProblem, tuple[Tensor, Tensor]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    return mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1)), (
        torch.randn(5, 3),
        torch.randint(0, 3, (5,)),
    )


@pytest.fixture(scope="session")
def tiny_problem() -> Callable[[], tuple[mm.ModuleProblem, tuple[Tensor, Tensor]]]:
    return _tiny_problem
