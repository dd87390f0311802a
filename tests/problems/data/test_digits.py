"""scikit-learn's digits (minimax_problems.data.digits): the seeded split."""

from __future__ import annotations

import pytest
import torch

from minimax_problems.data import digits


def test_digits_split_is_seeded_and_disjoint() -> None:
    x, y = digits.load_digits_tensors()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    a, b = digits.split(x, y, seed=3), digits.split(x, y, seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert len(a.y_train) + len(a.y_test) == 1797
    c = digits.split(x, y, seed=4)
    assert not torch.equal(a.y_train, c.y_train)
    small = digits.split(x, y, seed=3, train_size=100, test_size=50)
    assert small.x_train.shape == (100, 1, 8, 8) and small.y_test.shape == (50,)
    assert torch.equal(small.x_train, a.x_train[:100])
    with pytest.raises(ValueError, match="test_fraction"):
        digits.split(x, y, test_fraction=1.5)
