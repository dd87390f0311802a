"""The paper's toy objectives as plain tensor functions, shared by `minimax.testing` (the known
problems) and ``problems/toy.py`` (the demo's toys). Needs nothing beyond torch.

- the counterexample of the DDi paper: f(x, y) = y(x₁² + (x₂+1)²) + (1−y)(x₁² + (x₂−1)²) − y(1−y)
  on y ∈ [0, 1], with φ(x) = max_y f = x₁² + (|x₂| + 1)²;
- the bilinear toy g(θ, δ) = θ·δ on δ ∈ [−1, 1], R(θ) = |θ|;
- hat functions: the piecewise-linear interpolation weights that turn a max of k pieces into a
  min-max problem over δ ∈ [0, k − 1];
- the paper's 2-2-1 ELU network with its data (`elu_network`) and its loss (`bce_per_example`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "bce_per_example",
    "bilinear_maximizers",
    "counterexample_phi",
    "counterexample_value",
    "elu_network",
    "hats",
]


def counterexample_value(x: Tensor, y: Tensor) -> Tensor:
    """f(x, y) = y(x₁² + (x₂+1)²) + (1−y)(x₁² + (x₂−1)²) − y(1−y); x [..., 2], y [...]."""
    a = x[..., 0] ** 2 + (x[..., 1] + 1) ** 2
    b = x[..., 0] ** 2 + (x[..., 1] - 1) ** 2
    return y * a + (1 - y) * b - y * (1 - y)


def counterexample_phi(x: Tensor) -> Tensor:
    """φ(x) = max_{y ∈ [0,1]} f(x, y) = x₁² + (|x₂| + 1)²; x [..., 2]."""
    return x[..., 0] ** 2 + (x[..., 1].abs() + 1) ** 2


def bilinear_maximizers(theta: float, tol: float = 1e-12) -> Tensor:
    """Maximizers [k, 1] (float64) of θ·δ over δ ∈ [−1, 1]: both ends when |θ| ≤ tol."""
    ys = [-1.0, 1.0] if abs(theta) <= tol else [1.0 if theta > 0 else -1.0]
    return torch.tensor(ys, dtype=torch.float64).reshape(-1, 1)


def hats(delta: Tensor, k: int) -> Tensor:
    """Piecewise-linear interpolation weights at the nodes 0..k−1: delta [...] → [..., k]."""
    nodes = torch.arange(k, dtype=delta.dtype, device=delta.device)
    return torch.relu(1 - (delta.unsqueeze(-1) - nodes).abs())


def elu_network(
    n: int = 100, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, Tensor, Tensor]:
    """The paper's 2-2-1 ELU network (sigmoid output through `bce_per_example`) and its data:
    (model, x [n, 2] Gaussian, y = 1[x₁ > 0] [n]); the data from ``seed``'s generator, the
    weights from torch's global seed set to ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=dtype)
    y = (x[:, 0] > 0).to(dtype)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 2), nn.ELU(), nn.Linear(2, 1)).to(dtype)
    return model, x, y


def bce_per_example(logits: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy of logits [..., 1] against labels y [...], per example."""
    return nn.functional.binary_cross_entropy_with_logits(logits[..., 0], y, reduction="none")
