"""The one-pass group Gram matrix against k separate backward passes (float64, 1e-10)."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from minimax.engine.gramian.group import group_layers, group_layerwise


def _models():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    cnn = nn.Sequential(
        nn.Unflatten(1, (1, 6)),
        nn.Conv1d(1, 3, 3),
        nn.GroupNorm(1, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(12, 4),
        nn.LayerNorm(4),
    ).double()
    return {"mlp": mlp, "cnn": cnn}


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize(
    ("groups", "balanced"), [([0, 1, 2, 3, 4], True), ([3, 0, 4], True), ([4, 1, 2], False)]
)
def test_group_gram_and_direction_match_k_backward_passes(name, groups, balanced):
    model = _models()[name]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(60, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (60,), generator=gen)
    if balanced:  # equal groups: the batched (padded) product
        group = torch.arange(60) % 5
    else:  # group 1 holds most rows: one product per group
        group = torch.where(torch.rand(60, generator=gen) < 0.8, 1, torch.arange(60) % 5)
    counts = torch.bincount(group, minlength=5).double()
    averaging = nn.functional.one_hot(group, 5).double() / counts
    params = dict(model.named_parameters())

    def losses(p):
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y, reduction="none")

    gram, direction = group_layerwise(model, params, losses, group, groups)
    grads = []
    for g in groups:
        lg = (averaging[:, g] * losses(params)).sum()
        flat = [t.reshape(-1) for t in torch.autograd.grad(lg, list(params.values()))]
        grads.append(torch.cat(flat))
    full = torch.stack(grads)
    ref = full @ full.T
    assert torch.allclose(gram, ref, rtol=0, atol=1e-10 * float(ref.abs().max()))
    alpha = torch.linspace(0.1, 1.0, len(groups), dtype=torch.float64)
    alpha = alpha / alpha.sum()
    d = torch.cat([t.reshape(-1) for t in direction(alpha).values()])
    assert torch.allclose(d, alpha @ full, rtol=0, atol=1e-12)


def test_layers_outside_leaves_are_not_one_pass():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.scale * self.lin(x)

    m = Scaled()
    assert group_layers(m, {n for n, _ in m.named_parameters()}) is None
    bn = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert group_layers(bn, {n for n, _ in bn.named_parameters()}) is None
    assert group_layers(bn.eval(), {n for n, _ in bn.named_parameters()}) is not None
