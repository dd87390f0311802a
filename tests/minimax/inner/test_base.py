"""The inner-solver interface: solvers without a seed leave torch's global RNG alone; a search
whose caller reads only the deltas runs no scoring forward and still refuses non-finite results."""

import pytest
import torch
from torch import nn

import minimax as mm


def test_unseeded_solvers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mm.PGD(1, 0.1, seed=None)
    mm.APGD(1, seed=None)
    torch.testing.assert_close(torch.rand(3), expected)


def _classifier(seed: int = 0) -> tuple[mm.ModuleProblem, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.rand(10, 4), torch.randint(0, 3, (10,))
    return mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1, lower=0.0, upper=1.0)), (x, y)


@pytest.mark.parametrize("restarts", [1, 3])
def test_an_unscored_search_gives_the_same_deltas_without_the_scoring_forward(restarts):
    problem, batch = _classifier()
    passes = mm.extend.engine_of(problem).passes
    runs = []
    for scored in (True, False):
        before = passes.snapshot()
        found = mm.PGD(4, 0.03, restarts=restarts)(
            problem, problem.parameters(), batch, scored=scored
        )
        runs.append((found, passes.forward - before[0]))
    (scored, forwards), (unscored, unscored_forwards) = runs
    assert torch.equal(scored.deltas, unscored.deltas)
    assert forwards == 4 * restarts + restarts and unscored_forwards == 4 * restarts
    assert bool(scored.values.isfinite().all()) and bool(unscored.values.isnan().all())
    with pytest.raises(TypeError, match="scored must be True or False"):
        mm.PGD(1, 0.03)(problem, problem.parameters(), batch, scored="no")
    # the next search is scored again (the flag is per search)
    again = mm.PGD(4, 0.03, restarts=restarts)(problem, problem.parameters(), batch)
    torch.testing.assert_close(again.values, scored.values)


def test_an_unscored_search_refuses_non_finite_deltas_and_keeps_values_it_computed():
    problem, batch = _classifier(seed=1)
    # APGD computes its values anyway: they are returned and checked as in a scored search
    found = mm.APGD(3)(problem, problem.parameters(), batch, scored=False)
    assert bool(found.values.isfinite().all())
    with torch.no_grad():
        problem.model[0].weight[0, 0] = float("nan")
    # L2: NaN gradients make NaN deltas; L∞: sign(NaN) = 0 keeps the deltas finite, and the
    # ascent's last values are what is refused
    for ball, what in ((mm.L2Ball(0.5), "candidates"), (mm.LinfBall(0.1), "objective values")):
        problem.perturbation = ball
        with pytest.raises(mm.NonFiniteError) as err:
            mm.PGD(2, 0.03)(problem, problem.parameters(), batch, scored=False)
        assert err.value.what == what
    with pytest.raises(mm.NonFiniteError) as err:
        mm.APGD(3)(problem, problem.parameters(), batch, scored=False)
    assert err.value.what == "objective values"
    # Square keeps finite deltas where every margin is NaN: its last query's values are refused
    with pytest.raises(mm.NonFiniteError) as err:
        mm.Square(20)(problem, problem.parameters(), batch, scored=False)
    assert err.value.what == "objective values"
