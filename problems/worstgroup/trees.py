"""The tree baseline for worst-group data: scikit-learn's ``HistGradientBoostingClassifier``
with group-balanced sample weights, tuned on the validation part by worst-group accuracy
(gradient-boosted trees are a strong baseline for subgroup robustness on tabular data: Gardner,
Popovic and Schmidt, "Subgroup Robustness Grows on Trees", NeurIPS 2022).

Public API::

    group_balanced_weights(groups, num_groups) -> np.ndarray
    DEFAULT_GRID                      the hyperparameters tried (a tuple of dicts)
    fit_group_balanced_trees(data, *, seed=0, grid=DEFAULT_GRID, max_iter=200) -> TreeResult

Weights: example i of group g gets n / (k · n_g) (n training examples, k groups present, n_g in
group g), so every group's weights sum to n / k and the weights to n. Tuning: each grid point is
fitted on the training part (early stopping off, ``random_state=seed``); the one with the
highest worst-group validation accuracy wins, ties broken by the average validation accuracy,
then by grid order. The winner is evaluated once on the test part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from ..data.groups import WorstGroupData
from ..extras import require

__all__ = ["DEFAULT_GRID", "TreeResult", "fit_group_balanced_trees", "group_balanced_weights"]

#: learning rate × maximum leaves per tree (``max_iter`` trees, ``l2_regularization`` 0)
DEFAULT_GRID: tuple[dict[str, Any], ...] = tuple(
    {"learning_rate": lr, "max_leaf_nodes": leaves} for lr in (0.05, 0.1) for leaves in (15, 31)
)


@dataclass(frozen=True)
class TreeResult:
    """The tuned baseline: its test accuracies (worst group, average over examples, per group),
    the chosen hyperparameters and every grid point's validation scores."""

    worst_group_test_acc: float
    test_acc: float
    group_test_acc: dict[str, float]
    params: dict[str, Any]
    worst_group_val_acc: float
    val_acc: float
    grid: list[dict[str, Any]] = field(default_factory=list)


def group_balanced_weights(groups: np.ndarray | Tensor, num_groups: int) -> np.ndarray:
    """Sample weights n / (k · n_g): each present group's weights sum to n / k."""
    g = np.asarray(groups, dtype=np.int64)
    counts = np.bincount(g, minlength=num_groups).astype(np.float64)
    present = int((counts > 0).sum())
    return len(g) / (present * counts[g])


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().reshape(len(t), -1).cpu().numpy()


def _accuracies(
    predicted: np.ndarray, y: np.ndarray, g: np.ndarray, names: Sequence[str]
) -> tuple[float, float, dict[str, float]]:
    """(worst-group accuracy over present groups, average accuracy, per-group accuracy)."""
    correct = predicted == y
    per_group = {
        name: float(correct[g == k].mean()) for k, name in enumerate(names) if (g == k).any()
    }
    return min(per_group.values()), float(correct.mean()), per_group


def fit_group_balanced_trees(
    data: WorstGroupData,
    *,
    seed: int = 0,
    grid: Sequence[Mapping[str, Any]] = DEFAULT_GRID,
    max_iter: int = 200,
) -> TreeResult:
    """Fit group-balanced gradient-boosted trees for each grid point, keep the best by
    worst-group validation accuracy, and report its test accuracies (see the module doc)."""
    if not grid:
        raise ValueError("grid must hold at least one set of hyperparameters")
    ensemble = require("sklearn.ensemble", "the gradient-boosted-trees baseline")
    x, y, g = (_numpy(t) for t in data.train)
    y, g = y.ravel(), g.ravel()
    weights = group_balanced_weights(g, data.num_groups)
    xv, yv, gv = (_numpy(t) for t in data.val)
    scores: list[dict[str, Any]] = []
    best: tuple[tuple[float, float, int], Any] | None = None
    for i, point in enumerate(grid):
        options = {"max_iter": max_iter, "early_stopping": False, **point}
        model = ensemble.HistGradientBoostingClassifier(random_state=seed, **options)
        model.fit(x, y, sample_weight=weights)
        worst, average, _ = _accuracies(model.predict(xv), yv.ravel(), gv.ravel(), data.group_names)
        scores.append({"params": options, "worst_group_val_acc": worst, "val_acc": average})
        key = (worst, average, -i)
        if best is None or key > best[0]:
            best = (key, model)
    assert best is not None
    (worst_val, val_acc, neg_index), model = best
    xt, yt, gt = (_numpy(t) for t in data.test)
    worst, average, per_group = _accuracies(
        model.predict(xt), yt.ravel(), gt.ravel(), data.group_names
    )
    return TreeResult(
        worst_group_test_acc=worst,
        test_acc=average,
        group_test_acc=per_group,
        params=scores[-neg_index]["params"],
        worst_group_val_acc=worst_val,
        val_acc=val_acc,
        grid=scores,
    )
