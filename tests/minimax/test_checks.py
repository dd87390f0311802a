"""The shared argument checks of minimax.checks: integers, real numbers, the L∞ radius against the
input range, choices and tensors, with messages that name the argument."""

import math

import pytest
import torch

from minimax import checks


def test_integer():
    assert checks.integer("steps", 3, minimum=0) == 3
    assert checks.integer("steps", 3.0) == 3
    cases = [(2.7, ValueError), (True, TypeError), ("3", TypeError), (math.inf, ValueError)]
    for bad, err in cases:
        with pytest.raises(err, match="steps"):
            checks.integer("steps", bad)
    with pytest.raises(ValueError, match="restarts must be an integer ≥ 1, got 0"):
        checks.integer("restarts", 0, minimum=1)


def test_real_number():
    assert checks.real_number("eps", 0.5, positive=True) == 0.5
    for kwargs, bad in [
        ({}, math.nan),
        ({}, math.inf),
        ({"positive": True}, 0.0),
        ({"nonnegative": True}, -0.5),
        ({"at_most": 1.0}, 2.0),
    ]:
        with pytest.raises(ValueError, match="eps"):
            checks.real_number("eps", bad, **kwargs)
    with pytest.raises(TypeError, match="eps must be a real number"):
        checks.real_number("eps", "8/255")
    assert checks.real_number("eps", math.inf, finite=False) == math.inf
    assert checks.real_number("momentum", 0.0, nonnegative=True, below=1) == 0.0
    for bad in (1.0, 5.0, -0.1):
        with pytest.raises(ValueError, match=r"momentum must be (in \[0, 1\)|≥ 0)"):
            checks.real_number("momentum", bad, nonnegative=True, below=1)


def test_radius_refuses_an_l_inf_ball_wider_than_the_input_range():
    assert checks.radius("eps", 8 / 255, norm="linf") == 8 / 255
    assert checks.radius("eps", 8, norm="l2") == 8.0  # an L2 radius over 1 is ordinary
    assert checks.radius("eps", 8, norm="linf", lower=None, upper=None) == 8.0  # unbounded
    assert checks.radius("eps", 8, norm="linf", allow_large=True) == 8.0
    with pytest.raises(ValueError, match=r"eps 8 is wider .*\[0, 1\].*8/255.*--flag"):
        checks.radius("eps", 8, norm="linf", hint="pass --flag")
    with pytest.raises(ValueError, match="≥ 0"):
        checks.radius("eps", -1, norm="l2")


def test_choice_and_tensors():
    assert checks.choice("norm", "linf", ("linf", "l2")) == "linf"
    with pytest.raises(ValueError, match="norm must be one of 'linf', 'l2', got 'l3'"):
        checks.choice("norm", "l3", ("linf", "l2"))
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor.*x\.float\(\)"):
        checks.float_tensor("x", torch.zeros(2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="2 non-finite"):
        checks.finite_tensor("d", torch.tensor([1.0, math.nan, math.inf]))
    checks.finite_tensor("d", torch.ones(3))
