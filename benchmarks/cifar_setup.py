"""What the CIFAR-10 benchmarks share: the L∞ attack's radius and step, CIFAR-shaped random
batches, seeded models and a device sync for timings.

Public API::

    EPS, ALPHA                         8/255 and 2/255
    sync(device)                       wait for the device's queued work (CUDA; no-op on CPU)
    cifar_batch(batch, device, seed=0) -> (x [B, 3, 32, 32] in [0, 1], y [B] in 0..9)
    seeded_model(name, device, **kwargs) -> nn.Module   `build_model` with seed 0
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from minimax_problems.models import build_model

__all__ = ["ALPHA", "EPS", "cifar_batch", "seeded_model", "sync"]

EPS, ALPHA = 8 / 255, 2 / 255


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cifar_batch(batch: int, device: torch.device, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random images [B, 3, 32, 32] in [0, 1] and labels [B] in 0..9, from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    return x.to(device), y.to(device)


def seeded_model(name: str, device: torch.device, **kwargs: Any) -> nn.Module:
    """`minimax_problems.models.build_model` with torch's seed 0, on ``device``."""
    torch.manual_seed(0)
    return build_model(name, **kwargs).to(device)
