"""Enumerate: every vertex of a finite set with its exact value, refusals, and absent pieces
padded."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given

import minimax as mm
from minimax.testing import (
    finite_max_problems,
)

F64 = torch.float64


@given(kp=finite_max_problems(ties="rounding", max_batch=3))
def test_enumerate_returns_every_piece_with_its_exact_value(kp):
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    k, b = kp.info["k"], kp.info["B"]
    assert cands.m == k
    torch.testing.assert_close(cands.deltas, torch.eye(k, dtype=F64)[:, None].expand(k, b, k))
    top = kp.batch[2]
    assert torch.equal(cands.values, top.T)  # bit-exact: q_bj(θ₀) = top_bj
    assert torch.equal(cands.best_values(), kp.per_example_loss())


def test_enumerate_refuses_sets_without_vertices():
    kp = mm.testing.bilinear(0.0)
    with pytest.raises(TypeError, match="vertices"):
        mm.Enumerate()(kp.problem, kp.params, kp.batch)


class _PartialPieces(mm.FunctionProblem):
    """Two examples over Δ_3; example 1 lacks piece 0 (its value there is 0, its gradient 0)."""

    def present(self, batch):
        return torch.tensor([[True, True, True], [False, True, True]])


def test_enumerate_pads_absent_pieces_with_the_best_present_one():
    w = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, -4.0]], dtype=F64)
    problem = _PartialPieces(
        lambda p, d, b: (d * w * p["s"]).sum(-1),
        {"s": torch.ones(1, dtype=F64)},
        mm.Simplex(3),
        event_shape=(3,),
        batch_size=lambda b: 2,
    )
    cands = mm.Enumerate()(problem, problem.parameters(), None)
    assert cands.m == 3
    picked = cands.deltas.argmax(-1)  # [m, B] piece indices
    assert picked[:, 0].tolist() == [0, 1, 2]
    assert picked[:, 1].tolist() == [1, 2, 1]  # present pieces, then the best present one
    torch.testing.assert_close(cands.values[:, 1], torch.tensor([-1.0, -4.0, -1.0], dtype=F64))
