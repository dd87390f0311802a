"""GroupDRO: the exponentiated update of the group weights q and the direction, against a hand
computation, and its state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minimax as mm


def test_group_dro_update_matches_a_hand_computation(group_case):
    case = group_case([0, 0, 1, 3, 3], seed=7)  # group 2 absent
    model, problem, batch = case.model, case.problem, case.batch
    rule = mm.GroupDRO(step_size=0.5)
    cands = mm.Enumerate()(problem, problem.parameters(), batch)
    direction = rule(problem, problem.parameters(), batch, cands)
    losses = (
        [float(case.group_loss(g).detach()) for g in (0, 1)]
        + [0.0]
        + [float(case.group_loss(3).detach())]
    )
    expected = np.exp(0.5 * np.array(losses)) * 0.25
    expected /= expected.sum()
    np.testing.assert_allclose(direction.extras["q"].numpy(), expected, rtol=1e-12)
    model.zero_grad()
    sum(expected[g] * case.group_loss(g) for g in (0, 1, 3)).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(direction.vector[name], p.grad)
    # a second step starts from the saved weights
    state = rule.state_dict()
    fresh = mm.GroupDRO(step_size=0.5)
    fresh.load_state_dict(state)
    q2 = fresh(problem, problem.parameters(), batch, cands).extras["q"]
    q2_expected = expected * np.exp(0.5 * np.array(losses))
    np.testing.assert_allclose(q2.numpy(), q2_expected / q2_expected.sum(), rtol=1e-12)
    with pytest.raises(ValueError, match="step_size"):
        mm.GroupDRO(0.1).load_state_dict(state)
    with pytest.raises(ValueError):
        mm.GroupDRO(-1.0)
