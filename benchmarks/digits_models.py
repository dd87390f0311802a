"""The benchmark's models: a small CNN and an MLP trained briefly (clean, Adam) on scikit-learn's
8×8 digits (offline), and the accuracy at given inputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["accuracy_at", "digits_model"]


def _train(model: nn.Module, x: Tensor, y: Tensor, seed: int, epochs: int) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def digits_model(seed: int, epochs: int, kind: str = "cnn") -> tuple[nn.Module, Tensor, Tensor]:
    """A small CNN (``kind="cnn"``) or MLP (``"mlp"``) trained with Adam on 1,347 digits;
    returns it (eval mode) and the 450 test examples (x [N, 1, 8, 8] in [0, 1], y [N])."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(data.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = perm[:450], perm[450:]
    torch.manual_seed(seed)
    if kind == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )
    elif kind == "mlp":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )
    else:
        raise ValueError(f"kind must be 'cnn' or 'mlp', got {kind!r}")
    return _train(model, x[train], y[train], seed, epochs), x[test], y[test]


def accuracy_at(model: nn.Module, x_adv: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(-1) == y).double().mean())
