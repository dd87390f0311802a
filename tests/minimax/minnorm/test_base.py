"""The simplex QP's shared pieces: the KKT residual and the checks of the Gram matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minimax.minnorm import (
    kkt_residual,
    min_norm_product_weights,
    min_norm_weights,
)


def test_kkt_residual_formula():
    K = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # tr/m = 3
    assert kkt_residual(torch.tensor([0.25, 0.75]).double(), K).item() <= 1e-15
    # vertex e_1: Kn = K/3, r = (4/3, 1/3), λ = 4/3: dual violation 1, complementarity 0
    assert kkt_residual(torch.tensor([1.0, 0.0]).double(), K).item() == pytest.approx(1.0)
    # infeasible weights are reported
    assert kkt_residual(torch.tensor([0.6, 0.6]).double(), K).item() >= 0.2 - 1e-12
    assert kkt_residual(torch.tensor([1.2, -0.2]).double(), K).item() >= 0.2 - 1e-12
    # broadcasting one weight vector over a batch of Gram matrices
    w = torch.tensor([0.25, 0.75]).double()
    out = kkt_residual(w, torch.stack([K, 2 * K, K.flip(0, 1)]))
    assert out.shape == (3,) and out[0] <= 1e-15 and out[1] <= 1e-15 and out[2] > 0.1
    # blocks: two independent 1-vertex blocks are always optimal
    assert kkt_residual(torch.ones(2).double(), K, [1, 1]).item() <= 1e-15
    with pytest.raises(ValueError, match="weights must be"):
        kkt_residual(torch.ones(3), K)


@pytest.mark.parametrize(
    ("gram", "match"),
    [
        (torch.ones(3), "shape \\[..., m, m\\]"),
        (torch.ones(2, 3), "square"),
        (torch.ones(0, 0), "empty"),
        (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), "NaN or Inf"),
        (torch.tensor([[1.0, float("inf")], [float("inf"), 1.0]]), "NaN or Inf"),
        (torch.tensor([[1.0, 0.5], [0.2, 1.0]]), "not symmetric.*\\(K \\+ K.mT\\) / 2"),
        (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "not positive semidefinite"),
        (torch.tensor([[-1.0]]), "not positive semidefinite"),
        (np.eye(2), "torch.Tensor"),
        (torch.eye(2, dtype=torch.complex128), "real"),
    ],
)
def test_bad_gram_raises(gram, match):
    with pytest.raises(ValueError, match=match):
        min_norm_weights(gram)
    if isinstance(gram, torch.Tensor) and gram.dim() == 2 and gram.shape[0] == gram.shape[1] > 0:
        with pytest.raises(ValueError, match=match):
            min_norm_product_weights(gram, [gram.shape[0]])
