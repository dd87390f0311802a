"""The iterative solvers (pairwise Frank-Wolfe, APG): the gap to the exact answer shrinks with the
iteration budget."""

from __future__ import annotations

import torch

from minimax.minnorm import (
    min_norm_weights,
)
from tests.minimax.minnorm.families import gram_of, make_vectors, rel_gap


def test_frank_wolfe_and_apg_improve_with_budget():
    K = gram_of(torch.from_numpy(make_vectors("correlated", 20, 1)))
    f_ref = min_norm_weights(K).sq_norm.item()
    for method in ("frank-wolfe", "apg"):
        gaps = [
            rel_gap(min_norm_weights(K, method, max_iter=k).sq_norm.item(), f_ref, K)
            for k in (5, 50, 5000)
        ]
        assert gaps[2] <= gaps[0] and gaps[2] <= 1e-6
