"""Problems: clear errors on bad input, reprs, stacking modes, float64 under autocast."""

import math

import pytest
import torch
from torch import nn

import minimax as mm
from minimax.testing.problems import counterexample

# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_bad_inputs_have_clear_errors(logistic, elu_network):
    lin, loss, (x, y) = logistic()
    problem = mm.ModuleProblem(lin, loss, mm.LinfBall(0.1))
    params = problem.parameters()
    with pytest.raises(ValueError, match="eps must be"):
        mm.LinfBall(-0.1)
    with pytest.raises(ValueError, match="delta has shape"):
        mm.extend.engine_of(problem).values(
            params, torch.zeros(2, 16, 4, dtype=torch.float64), (x, y)
        )
    with pytest.raises(ValueError, match="empty"):
        mm.PGD(2, 0.1)(problem, params, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="examples but y"):
        mm.PGD(2, 0.1)(problem, params, (x, y[:3]))
    with pytest.raises(TypeError, match="dtype"):
        mm.PGD(2, 0.1)(problem, params, (x.float(), y))
    with pytest.raises(ValueError, match="model is on"):
        mm.PGD(2, 0.1)(problem, params, (x.to("meta"), y.to("meta")))
    with pytest.raises(ValueError, match="reduction='none'"):
        bad = mm.ModuleProblem(lin, lambda o, t: loss(o, t).mean(), mm.LinfBall(0.1))
        mm.PGD(2, 0.1)(bad, bad.parameters(), (x, y))
    with pytest.raises(ValueError, match="restarts"):
        mm.PGD(2, 0.1, restarts=0)
    with pytest.raises(ValueError, match="tolerance"):
        mm.DDi(tolerance=-1.0)
    with pytest.raises(TypeError, match="perturbation"):
        mm.ModuleProblem(lin, loss, None)
    with pytest.raises(ValueError, match="not in the optimizer"):
        mm.MinMaxOptimizer(
            problem,
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1),
            mm.PGD(1, 0.1),
            mm.DDi(),
        )
    with pytest.raises(MemoryError, match="per_example=False"):
        toy = elu_network(n=8)
        mm.descent_direction(
            toy.problem,
            None,
            toy.batch,
            mm.PGD(1, 0.1, restarts=2),
            mm.DDi(per_example=True),
            engine=mm.Engine(toy.problem, memory_budget=10, gramian="materialized"),
        )
    with pytest.raises(ValueError, match="per-example values"):
        fp = mm.FunctionProblem(
            lambda p, d, b: (p["t"] * d).sum(),
            {"t": torch.ones(1)},
            mm.Box(-1.0, 1.0),
            event_shape=(1,),
        )
        mm.PGD(1, 0.1)(fp, fp.parameters(), torch.zeros(3))


def test_reprs_are_readable():
    assert repr(mm.DDi(per_example=True, tolerance=0.1)) == "DDi(per_example=True, tolerance=0.1)"
    assert repr(mm.Danskin()) == "Danskin(certify=False)"
    assert "PGD(steps=10" in repr(mm.PGD(10, 0.1, restarts=4))
    assert math.isfinite(float(counterexample().robust_loss()))


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


def test_gram_and_qp_stay_float64_under_autocast():
    """Mixed precision (here CPU bf16 autocast, the CUDA path's analogue) leaves the Gram matrix
    and the QP in float64, and the certificate still holds."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.CELU(), nn.Linear(8, 3))
    x, y = torch.rand(16, 6), torch.randint(0, 3, (16,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1, lower=0.0, upper=1.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d, _ = mm.descent_direction(
            problem, None, (x, y), mm.PGD(3, 0.05, restarts=4, seed=0), mm.DDi()
        )
    assert d.extras["gram"].dtype == torch.float64 and d.weights.dtype == torch.float64
    assert float(d.certificate) <= -(float(d.norm) ** 2) + 1e-9
