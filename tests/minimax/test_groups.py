"""WorstGroupProblem: group means with absent groups left out, Danskin and ERM gradients against
autograd, the max over the simplex, bad labels, and the proportions in the problem's dtype."""

from __future__ import annotations

import math

import pytest
import torch

import minimax as mm

F64 = torch.float64


def test_worst_group_values_are_group_means_and_absent_groups_never_enter(group_case):
    case = group_case([0, 0, 1, 3, 3, 3, 1])  # group 2 is absent
    problem, batch = case.problem, case.batch
    losses = problem.group_losses(problem.parameters(), batch)
    for grp in (0, 1, 3):
        torch.testing.assert_close(losses[grp], case.group_loss(grp).detach())
    assert math.isnan(float(losses[2]))
    assert problem.present(batch).tolist() == [[True, True, False, True]]
    cands = mm.Enumerate()(problem, problem.parameters(), batch)
    assert cands.deltas[:, 0].argmax(-1).tolist() == [0, 1, 3]  # only present groups
    torch.testing.assert_close(cands.values[:, 0], losses[[0, 1, 3]])
    # the absent group's piece copies the lowest present loss: the max over Δ_k is unchanged
    pieces = problem.pieces(problem.parameters(), batch).detach()
    assert float(pieces[2]) == float(losses[[0, 1, 3]].min())
    direction = mm.DDi()(problem, problem.parameters(), batch, cands)
    k = direction.extras["gram"]
    assert float(torch.diagonal(k).min()) > 0  # no zero gradient in the hull
    assert float(direction.norm) > 1e-3


def test_worst_group_gradients_and_erm_weights(group_case):
    case = group_case([0, 1, 1, 2, 2, 2, 3, 0], seed=3)
    model, problem, batch = case.model, case.problem, case.batch
    cands = mm.Enumerate()(problem, problem.parameters(), batch)
    worst = int(cands.values[:, 0].argmax())
    d = mm.Danskin()(problem, problem.parameters(), batch, cands)
    model.zero_grad()
    case.group_loss(worst).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(d.vector[name], p.grad)
    erm = mm.engine.gradients.batch_gradient(
        problem, problem.parameters(), batch, problem.proportions(batch)
    )
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(erm[name], p.grad)


def test_worst_group_max_over_the_simplex_is_the_worst_present_group(group_case):
    case = group_case([0, 0, 1, 1, 3], seed=5)  # group 2 absent
    problem, batch = case.problem, case.batch
    cands = mm.PGD(steps=100, step_size=0.1, restarts=3)(
        problem, problem.parameters(), batch, generator=torch.Generator().manual_seed(0)
    )
    worst = problem.group_losses(problem.parameters(), batch).nan_to_num(-math.inf).max()
    torch.testing.assert_close(cands.best_values()[0], worst)


@pytest.mark.parametrize(
    "groups, error",
    [([0, 4], ValueError), ([-1, 0], ValueError), ([0.0, 1.0], TypeError)],
)
def test_worst_group_bad_labels(groups, error):
    model = torch.nn.Linear(3, 2).double()
    problem = mm.WorstGroupProblem.from_module(model, 4)
    batch = (torch.zeros(2, 3, dtype=F64), torch.zeros(2, dtype=torch.long), torch.tensor(groups))
    with pytest.raises(error, match="group"):
        problem.delta_shape(batch)


def test_worst_group_proportions_give_the_mean_loss_in_the_problems_dtype():
    """proportions are divided in θ's dtype (issue 21: computed in float32 and cast, a float64
    problem missed the plain mean loss by up to 5e-8)."""
    torch.manual_seed(0)
    group = torch.tensor([0, 1, 1, 2, 2, 2, 2])  # shares 1/7, 2/7, 4/7: inexact in binary
    losses = torch.rand(7, dtype=torch.float64) + 0.5
    theta = {"w": torch.ones((), dtype=torch.float64)}
    problem = mm.WorstGroupProblem(lambda p, data: p["w"] * data[0], theta, 3)
    batch = (losses, group)
    prop = problem.proportions(batch)
    assert prop.dtype == torch.float64
    value = mm.extend.engine_of(problem).values(problem.parameters(), prop.unsqueeze(0), batch)
    assert abs(float(value.detach()) - float(losses.mean())) <= 1e-15
