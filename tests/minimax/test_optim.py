"""MinMaxOptimizer: schedulers, state_dict resume, descent over training."""

import io

import pytest
import torch
from torch import nn

import minimax as mm

# ------------------------------------------------------------------------------------------------
# MinMaxOptimizer with schedulers and state_dict
# ------------------------------------------------------------------------------------------------


def _train(elu_network, steps, state=None):
    toy = elu_network(n=16, seed=1)
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


def test_state_dict_resume_is_exact(elu_network):
    full, _, sched_full = _train(elu_network, 4)
    half, opt, sched = _train(elu_network, 2)
    state = {"model": half.model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}
    resumed, _, sched_resumed = _train(elu_network, 2, state)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert sched_full.get_last_lr() == sched_resumed.get_last_lr() == [0.125]


def test_descent_over_training_on_elu_toy(elu_network):
    toy = elu_network(n=40)
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


# ------------------------------------------------------------------------------------------------
# resuming through the optimizer's state alone (rule state, generator, passes)
# ------------------------------------------------------------------------------------------------


def _ddi_run():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()
    gen = torch.Generator().manual_seed(1)
    batch = (torch.rand(16, 4, generator=gen, dtype=torch.float64), torch.arange(16) % 3)
    problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(0.2))
    sgd = torch.optim.SGD(problem.parameters().values(), lr=0.3, momentum=0.9)
    return (
        model,
        batch,
        mm.MinMaxOptimizer(problem, sgd, mm.PGD(3, 0.1, restarts=3, seed=5), mm.DDi()),
    )


def _group_dro_run():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    batch = (x, (x[:, 0] > 0).long(), torch.arange(12) % 4)
    problem = mm.WorstGroupProblem.from_module(model, 4)
    sgd = torch.optim.SGD(problem.parameters().values(), lr=0.5, momentum=0.9)
    return model, batch, mm.MinMaxOptimizer(problem, sgd, mm.Enumerate(), mm.GroupDRO(0.5))


def _continue(make, steps, saved=None, drop=()):
    """``steps`` steps of a fresh run, first restored from ``saved`` (model + optimizer state,
    round-tripped through torch.save / torch.load(weights_only=True)) when given."""
    model, batch, opt = make()
    if saved is not None:
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict({k: v for k, v in state["opt"].items() if k not in drop})
    losses = [opt.step(batch).robust_loss for _ in range(steps)]
    return model, opt, losses


@pytest.mark.parametrize("make", [_ddi_run, _group_dro_run], ids=["ddi", "group-dro"])
def test_a_run_resumes_bitwise_through_the_optimizer_state(make):
    full, full_opt, full_losses = _continue(make, 5)
    half, half_opt, _ = _continue(make, 2)
    saved = {"model": half.state_dict(), "opt": half_opt.state_dict()}
    resumed, opt, losses = _continue(make, 3, saved)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert losses == full_losses[2:]
    assert opt.steps == full_opt.steps == 5
    assert opt.engine.passes.snapshot() == full_opt.engine.passes.snapshot()
    assert str(opt.rule.state_dict()) == str(full_opt.rule.state_dict())
    if make is _group_dro_run:  # the rule's state matters: without it, the run differs
        _, _, other = _continue(make, 3, saved, drop=("rule",))
        assert other != losses


def test_load_state_dict_refuses_malformed_state_and_changes_nothing():
    _, batch, opt = _ddi_run()
    opt.step(batch)
    good = opt.state_dict()
    bad = {
        "not a dict": ([1, 2], TypeError, "must be a dict"),
        "missing": ({"steps": 1}, ValueError, "missing \\['optimizer'\\]"),
        "unknown": ({**good, "epoch": 3}, ValueError, "unknown \\['epoch'\\]"),
        "steps": ({**good, "steps": -1}, ValueError, "steps"),
        "passes": ({**good, "passes": [1]}, ValueError, "passes"),
        "generator": ({**good, "generator": torch.zeros(3)}, ValueError, "generator"),
        "rule": ({**good, "rule": {"q": torch.ones(2) / 2}}, ValueError, "keeps no state"),
        "optimizer": ({**good, "optimizer": {"state": {}}}, ValueError, "optimizer"),
    }
    _, _, fresh = _ddi_run()
    for name, (state, error, match) in bad.items():
        with pytest.raises(error, match=match):
            fresh.load_state_dict(state)  # type: ignore[arg-type]
        assert fresh.steps == 0 and fresh.engine.passes.snapshot() == (0, 0), name
        assert fresh.optimizer.state_dict()["state"] == {}, name
    fresh.load_state_dict(good)
    assert fresh.steps == 1 and fresh.engine.passes.snapshot() == opt.engine.passes.snapshot()
    dro = mm.GroupDRO()
    with pytest.raises(TypeError, match="dict"):
        dro.load_state_dict([0.5, 0.5])  # type: ignore[arg-type]


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
