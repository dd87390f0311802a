"""Early stopping of attacks (`minimax.inner.early_stop`): the cycle rule on constructed cycles,
PGD's identical results with and without it, the stall counter, and `evaluate(early_stop=True)`
giving the same robust examples as the full run on small models while running fewer passes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import minimax
from minimax.attacks import early_stop_rule
from minimax.engine import engine_of
from minimax.inner.early_stop import ActiveRows, EarlyStop, Stall
from minimax.inner.pgd import _cycle_end
from tests.minimax.classifiers import fitted_classifier


def _classifier(seed: int = 0, n: int = 64, classes: int = 10):
    return fitted_classifier(seed, n, classes)


# -- the rules on constructed sequences -----------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    period=st.integers(1, 4),
    lead=st.integers(0, 3),
    remaining=st.integers(1, 12),
    window=st.integers(4, 8),
)
def test_cycle_end_reads_the_final_iterate_off_a_constructed_cycle(period, lead, remaining, window):
    # a sequence that enters a cycle of `period` distinct points after `lead` other points
    points = [torch.full((1, 1, 2), float(k)) for k in range(lead + period)]
    seq = points[:lead] + [points[lead + (i % period)] for i in range(3 * period + window)]
    t = len(seq) - 1  # the current iterate
    past = seq[max(0, t - window) : t]
    hit, end = _cycle_end(past, seq[t], remaining)
    assert bool(hit.all()) == (period <= len(past) and t - period >= lead)
    if bool(hit.all()):
        k = t + remaining  # where the run would be after `remaining` more steps
        expected = points[lead + ((k - lead) % period)]
        assert torch.equal(end, expected)


def test_cycle_end_finds_nothing_without_a_repeat():
    past = [torch.full((2, 3, 1), float(k)) for k in range(5)]
    hit, end = _cycle_end(past, torch.full((2, 3, 1), 9.0), 4)
    assert not bool(hit.any()) and torch.equal(end, torch.full((2, 3, 1), 9.0))


def test_stall_counts_iterations_without_an_increase():
    s = Stall(torch.zeros(3), patience=2)
    assert not bool(s.update(torch.tensor([True, False, False])).any())
    assert s.update(torch.tensor([False, False, True])).tolist() == [False, True, False]
    assert s.count.tolist() == [1, 2, 0]
    never = Stall(torch.zeros(2), patience=None)
    for _ in range(5):
        assert not bool(never.update(torch.tensor([False, False])).any())


def test_active_rows_index_the_batch_once_per_change():
    x, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
    rows = ActiveRows((x, y))
    assert rows.everything and rows.batch[0] is x
    assert rows.update(torch.tensor([True, False, True, True, False])) == 3
    sub = rows.batch
    assert torch.equal(sub[1], torch.tensor([0, 2, 3])) and not rows.everything
    rows.update(torch.tensor([True, False, True, True, False]))
    assert rows.batch is sub  # unchanged rows: the same tensors (the problem checks them once)


def test_early_stop_refuses_bad_settings():
    with pytest.raises(ValueError, match="patience"):
        EarlyStop(patience=0)
    with pytest.raises(TypeError, match="EarlyStop"):
        minimax.PGD(5, 0.1, stop=3)  # type: ignore[arg-type]
    assert EarlyStop.scaled(100, 0.25, 20) == 25 and EarlyStop.scaled(10, 0.25, 20) == 20


# -- PGD: the cycle rule loses nothing -------------------------------------------------------------


def _pgd_run(net, x, y, stop, select):
    problem = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.1, lower=0, upper=1))
    solver = minimax.PGD(60, 0.02, restarts=2, select=select, seed=0, stop=stop)
    found = solver(problem, problem.parameters(), (x, y))
    return found, engine_of(problem).passes.backward


@pytest.mark.parametrize("select", ["last", "best"])
def test_pgd_with_the_cycle_rule_returns_the_full_runs_result(select):
    net, x, y = _classifier(seed=1)
    full, backward_full = _pgd_run(net, x, y, None, select)
    early, backward_early = _pgd_run(net, x, y, EarlyStop(cycles=True), select)
    if select == "last":  # the same point, read off the cycle
        assert torch.equal(full.deltas, early.deltas)
    # "best": the same best value (a sub-batch's forward may round its last bit differently,
    # so a later visit of the same point in the full run can win a tie)
    assert torch.allclose(full.values, early.values, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        for d_full, d_early in zip(full.deltas, early.deltas):
            assert torch.equal(net(x + d_full).argmax(1) == y, net(x + d_early).argmax(1) == y)
    assert backward_full == 60 * 2
    assert backward_early < backward_full  # large steps cycle on the ball's vertices


def test_pgd_cycle_rule_stops_at_a_fixed_point_of_a_linear_model():
    # a linear model: the sign of the gradient never changes, δ reaches the vertex and stays
    # there (a cycle of period 1), so the run stops after the second visit
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(8, 3)).eval()
    x, y = torch.rand(6, 1, 8) * 0.5 + 0.25, torch.randint(0, 3, (6,))
    problem = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.1, lower=0, upper=1))
    solver = minimax.PGD(50, 0.1, random_start=False, stop=EarlyStop(cycles=True))
    found = solver(problem, problem.parameters(), (x, y))
    assert engine_of(problem).passes.backward == 2  # δ₁ = vertex, δ₂ = δ₁: stop
    full = minimax.PGD(50, 0.1, random_start=False)(problem, problem.parameters(), (x, y))
    assert torch.equal(found.deltas, full.deltas)


# -- evaluate(early_stop=True) ---------------------------------------------------------------------


def test_early_stop_rules_of_the_named_attacks():
    rules = {
        name: early_stop_rule(minimax.extend.ATTACKS.build(name, 0.1, None, 1, 0))
        for name in ("pgd", "apgd-ce", "apgd-t", "fab-t", "square", "fgsm")
    }
    assert rules["pgd"] == EarlyStop(patience=None, cycles=True)
    for name in ("apgd-ce", "apgd-t", "fab-t"):
        assert rules[name] == EarlyStop(patience=25, cycles=False)
    assert rules["square"] == EarlyStop(patience=500, cycles=False)
    assert rules["fgsm"] is None


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluate_with_early_stop_finds_the_same_robust_examples(seed):
    net, x, y = _classifier(seed=seed, n=48)
    kw = dict(eps=0.08, attacks="standard", steps=30, seed=seed, batch_size=48)
    full = minimax.evaluate(net, (x, y), **kw)
    early = minimax.evaluate(net, (x, y), early_stop=True, **kw)
    assert torch.equal(full.robust, early.robust)
    assert 0 < full.robust_acc < full.clean_acc  # some examples broken, some not
    assert early.passes["apgd-ce"]["backward"] <= full.passes["apgd-ce"]["backward"]
    assert sum(p["forward"] for p in early.passes.values()) < sum(
        p["forward"] for p in full.passes.values()
    )


def test_apgd_early_stop_returns_the_misclassified_iterate():
    net, x, y = _classifier(seed=3, n=48)
    problem = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.1, lower=0, upper=1))
    stop = EarlyStop(patience=None, cycles=False)
    found = minimax.APGD(40, seed=0, stop=stop)(problem, problem.parameters(), (x, y))
    full = minimax.APGD(40, seed=0)(problem, problem.parameters(), (x, y))
    with torch.no_grad():
        broken_early = net(x + found.deltas[0]).argmax(1) != y
        broken_full = net(x + full.deltas[0]).argmax(1) != y
    assert bool(broken_early.any())
    assert bool((broken_early | ~broken_full).all())  # whatever the full run broke is broken
