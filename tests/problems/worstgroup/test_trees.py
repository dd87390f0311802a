"""The group-balanced gradient-boosted-trees baseline on a small subset of Adult."""

from __future__ import annotations

import numpy as np
import pytest

from minimax_problems.data.adult import load_adult
from minimax_problems.worstgroup.trees import (
    DEFAULT_GRID,
    fit_group_balanced_trees,
    group_balanced_weights,
)


def test_group_balanced_weights_give_every_group_the_same_total():
    groups = np.array([0, 0, 0, 1, 2, 2, 0, 2])
    weights = group_balanced_weights(groups, num_groups=4)  # group 3 absent
    totals = np.bincount(groups, weights=weights, minlength=4)
    np.testing.assert_allclose(totals[:3], len(groups) / 3)
    assert weights.sum() == pytest.approx(len(groups))


def test_tree_baseline_is_deterministic_on_a_small_subset():
    data = load_adult(seed=0).head(train=600, val=300, test=400)
    grid = DEFAULT_GRID[:2]
    first = fit_group_balanced_trees(data, seed=0, grid=grid, max_iter=10)
    second = fit_group_balanced_trees(data, seed=0, grid=grid, max_iter=10)
    assert first == second
    assert len(first.grid) == 2 and first.params in [p["params"] for p in first.grid]
    assert first.worst_group_test_acc == min(first.group_test_acc.values())
    assert 0.5 < first.test_acc <= 1.0 and first.worst_group_test_acc <= first.test_acc
    best = max(first.grid, key=lambda p: (p["worst_group_val_acc"], p["val_acc"]))
    assert first.worst_group_val_acc == best["worst_group_val_acc"]
