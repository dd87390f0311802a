"""A seeded train / validation split of an in-memory data set."""

from __future__ import annotations

import torch

__all__ = ["train_val_split"]


def train_val_split(
    images: torch.Tensor, labels: torch.Tensor, val_size: int | float, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hold out a random, seed-determined validation set.

    ``val_size`` is a count, or a fraction in (0, 1). Both parts keep the original order.
    Returns train_images, train_labels, val_images, val_labels.
    """
    n = images.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{n} images but {labels.shape[0]} labels")
    n_val = round(val_size * n) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 <= n_val <= n:
        raise ValueError(f"val_size={val_size} must be in [0, {n}] (or a fraction in [0, 1))")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx = perm[:n_val].sort().values
    train_idx = perm[n_val:].sort().values
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]
