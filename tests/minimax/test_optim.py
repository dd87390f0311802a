"""MinMaxOptimizer: schedulers, state_dict resume, descent over training."""

import pytest
import torch
from torch import nn

import minimax as mm
from problems.toy import ELUNetwork

# ------------------------------------------------------------------------------------------------
# MinMaxOptimizer with schedulers and state_dict
# ------------------------------------------------------------------------------------------------


def _train(steps, state=None):
    toy = ELUNetwork(n=16, seed=1)
    sgd = torch.optim.SGD(toy.params().values(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=2, gamma=0.5)
    opt = mm.MinMaxOptimizer(toy.problem, sgd, mm.PGD(3, 0.3, restarts=3, seed=5), mm.DDi())
    if state is not None:
        toy.model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    for _ in range(steps):
        opt.step(toy.batch)
        sched.step()
    return toy, opt, sched


def test_state_dict_resume_is_exact():
    full, _, sched_full = _train(4)
    half, opt, sched = _train(2)
    state = {"model": half.model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}
    resumed, _, sched_resumed = _train(2, state)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert sched_full.get_last_lr() == sched_resumed.get_last_lr() == [0.125]


def test_descent_over_training_on_elu_toy():
    toy = ELUNetwork(n=40)
    opt = mm.MinMaxOptimizer(
        toy.problem,
        torch.optim.SGD(toy.params().values(), lr=0.5),
        mm.PGD(10, 0.25, restarts=4, seed=0),
        mm.DDi(),
    )
    start = float(toy.robust_loss(resolution=41))
    for _ in range(15):
        opt.step(toy.batch)
    assert float(toy.robust_loss(resolution=41)) < start - 0.05


def test_step_is_backward_then_the_optimizers_step():
    """`MinMaxOptimizer.step` and `minimax.backward` + ``opt.step()`` apply the same direction
    (one code path, `apply_direction`): bitwise the same parameters and BatchNorm statistics."""
    results = []
    for use_backward in (False, True):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
        x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
        problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
        sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        inner, rule = mm.PGD(2, 0.05, restarts=3, seed=0), mm.DDi()
        for _ in range(2):
            if use_backward:
                sgd.zero_grad(set_to_none=True)
                mm.backward(problem, (x, y), inner, rule)
                sgd.step()
            else:
                mm.MinMaxOptimizer(problem, sgd, inner, rule).step((x, y))
        results.append({k: v.clone() for k, v in net.state_dict().items()})
    for k in results[0]:
        assert torch.equal(results[0][k], results[1][k]), k


def test_danskin_certificate_after_the_scoring_graph():
    """With one restart Danskin's gradient comes from the scoring graph; its certificate then
    takes the candidates' gradients by forwards of their own (the graph is used once)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    inner = mm.PGD(2, 0.05, restarts=1, seed=0)
    d, _ = mm.descent_direction(problem, None, (x, y), inner, mm.Danskin(certify=True))
    assert d.certificate is not None
    assert float(d.certificate) == pytest.approx(-(float(d.norm) ** 2), rel=1e-9)


def test_solvers_keep_their_settings_across_searches():
    """FGSM's default step is the set's ε for that call only; Enumerate's restarts stay."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    fgsm = mm.FGSM()
    fgsm(problem, problem.parameters(), (torch.randn(4, 3), torch.randint(0, 2, (4,))))
    assert fgsm.step_size is None
    groups = mm.WorstGroupProblem.from_module(nn.Linear(3, 2), 3)
    enum = mm.Enumerate()
    batch = (torch.randn(6, 3), torch.randint(0, 2, (6,)), torch.tensor([0, 1, 2, 0, 1, 2]))
    cands = enum(groups, groups.parameters(), batch)
    assert cands.m == 3 and enum.restarts == 1
