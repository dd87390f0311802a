"""The offline real-data instance: scikit-learn's handwritten digits (1,797 8×8 grey images).

Public API::

    load_digits_tensors() -> (x, y)          x [1797, 1, 8, 8] float32 in [0, 1], y [1797] int64
    split(x, y, *, test_fraction=0.25, seed=0, train_size=None, test_size=None) -> Digits
    load(*, test_fraction=0.25, seed=0, train_size=None, test_size=None) -> Digits

`Digits` holds the train and test tensors; ``.train`` and ``.test`` are ``(x, y)`` tuples, the
form `problems.training.train` takes. The data ships
with scikit-learn, so nothing is downloaded. Pixel values (0..16 in the raw data) are divided
by 16. The split is a seeded random permutation (a `torch.Generator`), so the same seed gives
the same split on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["NUM_CLASSES", "Digits", "load", "load_digits_tensors", "split"]

NUM_CLASSES = 10
IMAGE_SIZE = 8


def load_digits_tensors() -> tuple[Tensor, Tensor]:
    """All 1,797 images as x [N, 1, 8, 8] float32 in [0, 1] and labels y [N] int64 (scikit-learn
    ships them: `problems.extras.MissingExtraError` without it)."""
    from ..extras import require

    data = require("sklearn.datasets", "the digits data set").load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    x = (x / 16.0).clamp_(0.0, 1.0)
    y = torch.as_tensor(data.target, dtype=torch.int64)
    return x, y


@dataclass(frozen=True)
class Digits:
    """A train/test split of the digits: x [n, 1, 8, 8] float32, y [n] int64."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    seed: int

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        """(x [n, 1, 8, 8] float32, y [n] int64) of the training part."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[Tensor, Tensor]:
        """(x, y) of the test part."""
        return self.x_test, self.y_test

    def __repr__(self) -> str:
        return f"Digits(train={len(self.y_train)}, test={len(self.y_test)}, seed={self.seed})"


def split(
    x: Tensor,
    y: Tensor,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Digits:
    """Seeded random split; ``train_size``/``test_size`` keep only the first examples of each part
    (a smaller problem for quick runs)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
    n = int(x.shape[0])
    n_test = max(1, round(n * test_fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    if train_size is not None:
        train_idx = train_idx[: int(train_size)]
    if test_size is not None:
        test_idx = test_idx[: int(test_size)]
    return Digits(
        x[train_idx].contiguous(),
        y[train_idx].contiguous(),
        x[test_idx].contiguous(),
        y[test_idx].contiguous(),
        int(seed),
    )


def load(
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Digits:
    """`load_digits_tensors` followed by `split`."""
    x, y = load_digits_tensors()
    return split(
        x, y, test_fraction=test_fraction, seed=seed, train_size=train_size, test_size=test_size
    )
