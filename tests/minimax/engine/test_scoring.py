"""The scoring forward's graph: kept for the step's rule only where it pays, and then the same
direction with no forward of the rule's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import minimax as mm


@pytest.mark.parametrize(
    ("rule", "m", "chunk", "kept"),
    [
        (mm.Danskin(), 1, None, True),
        (mm.Danskin(), 3, 1, False),  # one gradient of m: no graphs kept
        (mm.DDi(), 3, 1, True),  # every candidate has its own forward
        (mm.DDi(), 3, None, False),  # a stacked forward: a backward would cost all m
        (mm.MaxLoss(), 1, None, False),
        (mm.DDi(per_example=True), 1, None, False),
    ],
)
def test_one_decision_keeps_the_scoring_graph(tiny_problem, rule, m, chunk, kept):
    problem, batch = tiny_problem()
    engine = mm.Engine(problem)
    inner = mm.PGD(2, 0.05, restarts=m, seed=0, chunk=chunk)
    with engine.step(rule.need, m):
        cands = inner(engine, problem.parameters(), batch)
        assert (engine.graph_for(cands.deltas) is not None) == kept
    assert engine.graph_for(cands.deltas) is None  # dropped with the step


@pytest.mark.parametrize("rule", [mm.Danskin(), mm.DDi()], ids=["danskin", "ddi"])
def test_scoring_graph_gives_the_same_direction_without_forwards(rule):
    """Where the engine keeps the scoring graph, the rule backpropagates through PGD's scoring
    forward: the direction is bitwise the same and the rule runs no forward of its own."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(128, 3))
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 3, (64,))  # 4096 entries: a loop on CPU
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1, lower=0.0, upper=1.0))
    params = problem.parameters()
    runs = []
    for keep in (False, True):
        engine = mm.Engine(problem, reuse_scoring=keep)
        with engine.step("all", 2):  # every candidate's gradient: keep where it pays
            cands = mm.PGD(3, 0.05, restarts=2, seed=0)(engine, params, (x, y))
            assert (engine.graph_for(cands.deltas) is not None) == keep
            f0, b0 = engine.passes.snapshot()
            d = rule(engine, params, (x, y), cands)
            runs.append((d, engine.passes.forward - f0, engine.passes.backward - b0))
    (d_sep, f_sep, b_sep), (d_graph, f_graph, b_graph) = runs
    for k in d_sep.vector:
        assert torch.equal(d_sep.vector[k], d_graph.vector[k]), k
    assert f_graph == 0 and b_graph == b_sep
    assert f_sep == (1 if isinstance(rule, mm.Danskin) else 2)
