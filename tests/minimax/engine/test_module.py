"""A `ModuleProblem`'s execution: the stacking modes agree, and train-mode BatchNorm gets each
restart's own forward and updates its running statistics once per step."""

import pytest
import torch
from torch import nn

import minimax as mm


def test_batchnorm_per_restart_gradients_equal_separate_forwards(bn_net):
    torch.manual_seed(0)
    net = bn_net().double().train()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.3))
    deltas = 0.3 * (2 * torch.rand(4, 8, 3, dtype=torch.float64) - 1)
    before = (net.bn.running_mean.clone(), net.bn.running_var.clone())
    got = mm.linalg.candidate_gradients(problem, problem.parameters(), (x, y), deltas)
    values = mm.extend.engine_of(problem).values(problem.parameters(), deltas, (x, y))
    torch.testing.assert_close(net.bn.running_mean, before[0])  # nothing tracked inside
    for i in range(4):
        ref = bn_net().double().train()
        ref.load_state_dict(net.state_dict())
        loss = nn.functional.cross_entropy(ref(x + deltas[i]), y)
        ref.zero_grad()
        loss.backward()
        torch.testing.assert_close(values[i].mean(), loss.detach())
        for name, p in ref.named_parameters():
            torch.testing.assert_close(got[name][i], p.grad)
    # the stacked forward would mix statistics across restarts; ours must not
    mixed = nn.functional.cross_entropy(
        net((x + deltas).reshape(32, 3)), y.repeat(4), reduction="none"
    ).reshape(4, 8)
    assert not torch.allclose(mixed, values)


def test_per_example_ddi_refuses_coupled_batchnorm(bn_net):
    torch.manual_seed(0)
    net = bn_net().train()
    x, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    with pytest.raises(ValueError, match="coupled"):
        mm.descent_direction(
            problem, None, (x, y), mm.PGD(2, 0.05, restarts=2), mm.DDi(per_example=True)
        )
    ev = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), batchnorm="eval")
    d, _ = mm.descent_direction(
        ev, None, (x, y), mm.PGD(2, 0.05, restarts=2), mm.DDi(per_example=True)
    )
    # a float32 model: K and ‖d‖ carry float32 rounding, so they agree to that (not to 1e-8)
    norm2 = float(d.norm) ** 2
    assert float(d.certificate) <= -norm2 + 1e-5 * norm2


def test_batchnorm_running_statistics_update_once_per_step(bn_net):
    torch.manual_seed(0)
    net = bn_net().train()
    x, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    opt = mm.MinMaxOptimizer(
        problem,
        torch.optim.SGD(problem.parameters().values(), lr=0.1),
        mm.PGD(3, 0.05, restarts=3, seed=0),
        mm.DDi(),
    )
    opt.step((x, y))
    assert int(net.bn.num_batches_tracked) == 1
    assert not torch.allclose(net.bn.running_mean, torch.zeros(6))
    ev = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), batchnorm="eval")
    opt = mm.MinMaxOptimizer(
        ev,
        torch.optim.SGD(ev.parameters().values(), lr=0.1),
        mm.PGD(3, 0.05, restarts=3, seed=0),
        mm.DDi(),
    )
    opt.step((x, y))
    assert int(net.bn.num_batches_tracked) == 2 and net.training


@pytest.mark.parametrize("bn", [False, True])
def test_stacking_modes_agree(bn, bn_net):
    torch.manual_seed(0)
    net = (bn_net() if bn else nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3))).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 3, (6,))
    deltas = 0.1 * torch.randn(4, 6, 3, dtype=torch.float64)
    modes = ["auto", "vmap", "loop"] + ([] if bn else ["stack"])
    outs = []
    for mode in modes:
        problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
        engine = mm.Engine(problem, stacking=mode)
        outs.append(engine.values(problem.parameters(), deltas, (x, y)).detach())
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0])
    if bn:
        problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
        with pytest.raises(ValueError, match="share BatchNorm"):
            mm.Engine(problem, stacking="stack").values(problem.parameters(), deltas, (x, y))
    with pytest.raises(ValueError, match="stacking must be"):
        mm.Engine(mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1)), stacking="fast")
