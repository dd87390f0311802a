"""Coupled examples (train-mode BatchNorm per restart): the candidates' values are g at the
returned deltas, for every solver that keeps a best iterate (docs/reliability.md)."""

import pytest
import torch
from torch import nn

import minimax as mm


def _bn_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(0.5))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 4, generator=gen)
    y = torch.randint(0, 3, (16,), generator=gen)
    assert problem.examples_coupled
    return problem, (x, y)


@pytest.mark.parametrize(
    "solver",
    [
        mm.PGD(8, 0.2, restarts=3, select="best"),
        mm.APGD(8, restarts=3, loss="ce"),
        mm.APGD(8, restarts=3, loss="dlr"),
        mm.PGD(8, 0.2, restarts=3, select="last"),
    ],
    ids=repr,
)
def test_values_are_g_at_the_returned_deltas(solver):
    problem, batch = _bn_problem()
    params = problem.parameters()
    cands = solver(problem, params, batch)
    with torch.no_grad():
        again = mm.extend.engine_of(problem).values(params, cands.deltas, batch)
    torch.testing.assert_close(cands.values, again, rtol=1e-5, atol=1e-5)


def test_uncoupled_best_is_per_example():
    """Without coupling PGD(select="best") still keeps each example's best iterate: its values
    are at least those of the last iterate from the same starts, example by example."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(0.5))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    best = mm.PGD(8, 0.4, restarts=2, select="best")(problem, problem.parameters(), (x, y))
    last = mm.PGD(8, 0.4, restarts=2, select="last")(problem, problem.parameters(), (x, y))
    assert bool((best.values >= last.values - 1e-6).all())
