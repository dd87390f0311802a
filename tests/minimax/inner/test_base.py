"""The inner-solver interface: solvers without a seed leave torch's global RNG alone."""

import torch

import minimax as mm


def test_unseeded_solvers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mm.PGD(1, 0.1, seed=None)
    mm.APGD(1, seed=None)
    torch.testing.assert_close(torch.rand(3), expected)
