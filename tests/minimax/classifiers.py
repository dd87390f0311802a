"""A small trained classifier for the attack tests (a helper module, imported by
``tests/minimax/test_attacks.py`` and ``tests/minimax/inner/test_early_stop.py``)."""

import torch
from torch import nn


def fitted_classifier(seed: int = 0, n: int = 64, classes: int = 10):
    """A small MLP fitted (150 Adam steps) to a random linear teacher on 1×4×4 inputs in [0, 1]:
    (model in eval mode, x [n, 1, 4, 4], y [n])."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=g)
    teacher = torch.randn(16, classes, generator=g)
    y = ((x.flatten(1) - 0.5) @ teacher).argmax(1)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), x, y
