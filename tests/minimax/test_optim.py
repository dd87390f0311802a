"""MinMaxOptimizer: schedulers, state_dict resume, descent over training."""

import torch

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
