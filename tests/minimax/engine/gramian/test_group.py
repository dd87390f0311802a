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


# ------------------------------------------------------------------------------------------------
# wired into the engine: DDi on a WorstGroupProblem in one pass
# ------------------------------------------------------------------------------------------------


def _worst_group(k=10, n=200, seed=0):
    import minimax as mm

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, k)).double()
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    y = torch.arange(n) % k
    return mm.WorstGroupProblem.from_module(model, k), (x, y, y)


@pytest.mark.parametrize("tolerance", [None, 0.05])
def test_ddi_on_worst_group_matches_the_k_backward_path(tolerance):
    import minimax as mm

    problem, batch = _worst_group()
    fast, slow = mm.Engine(problem), mm.Engine(problem, gramian="materialized")
    rule = mm.DDi(tolerance=tolerance)
    params = problem.parameters()
    cands = mm.Enumerate()(fast, params, batch)
    f0 = fast.passes.snapshot()
    a = rule(fast, params, batch, cands)
    f1 = fast.passes.snapshot()
    b = rule(slow, params, batch, cands)
    f2 = fast.passes.snapshot()
    assert (f1[0] - f0[0], f1[1] - f0[1]) == (1, 1)
    assert f2[1] - f1[1] >= int((b.weights != 0).sum())  # the reference: one per kept group
    torch.testing.assert_close(a.weights, b.weights, rtol=0, atol=1e-10)
    for name in params:
        torch.testing.assert_close(a.vector[name], b.vector[name], rtol=0, atol=1e-10)
    assert float(a.certificate) == pytest.approx(float(b.certificate), abs=1e-10)


def test_ddi_step_on_worst_group_costs_at_most_two_backward_passes():
    import minimax as mm

    problem, batch = _worst_group(k=10)
    sgd = torch.optim.SGD(list(problem.parameters().values()), lr=0.3)
    opt = mm.MinMaxOptimizer(problem, sgd, mm.Enumerate(), mm.DDi(), step_size="armijo")
    for _ in range(3):
        report = opt.step(batch)
        assert report.backward <= 2 and report.forward <= 2
        assert int((report.weights > 0).sum()) >= 1


def test_mixed_strategies_and_train_batchnorm_take_the_generic_path():
    import minimax as mm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.Linear(6, 3)).double()
    problem = mm.WorstGroupProblem.from_module(model, 3)
    x = torch.randn(30, 8, dtype=torch.float64)
    y = torch.arange(30) % 3
    engine = mm.Engine(problem)
    cands = mm.Enumerate()(engine, problem.parameters(), (x, y, y))
    f0 = engine.passes.snapshot()
    mm.DDi()(engine, problem.parameters(), (x, y, y), cands)
    assert engine.passes.backward - f0[1] == 3  # one per group: BatchNorm couples the rows
