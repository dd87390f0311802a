"""The Armijo search of minimax.linesearch: accepted and refused steps on the counterexample, NaN
trials, the bound on accepted steps at a kink, bad arguments."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minimax.linesearch import Armijo


def _phi(x1: float, x2: float) -> float:
    """The paper's counterexample: φ(x) = x₁² + (|x₂| + 1)²."""
    return x1**2 + (abs(x2) + 1) ** 2


def test_counterexample_ddi_step_is_accepted_and_danskin_step_is_refused():
    # at x = (1, 0): DDi's d = (2, 0) with certificate −‖d‖² = −4; Danskin's d = (2, 2) with the
    # certified slope max_i ⟨−d, g_i⟩ = max(−(4 − 4), −(4 + 4)) = 0: no descent is promised
    search = Armijo()
    ddi = search.search(lambda t: _phi(1 - 2 * t, 0.0), r0=2.0, slope=-4.0)
    assert ddi.accepted and ddi.trials == 2 and ddi.t == 0.5  # t = 1 overshoots to φ = 2
    assert ddi.value == _phi(0.0, 0.0) and ddi.value <= ddi.bound < 2.0
    assert ddi.decrease == pytest.approx(1.0)
    danskin = search.search(lambda t: _phi(1 - 2 * t, -2 * t), r0=2.0, slope=0.0)
    assert not danskin.accepted and danskin.trials == 0 and danskin.value == 2.0


def test_no_trial_passes_means_no_step():
    # a direction that promises descent but every trial goes up: R(θ − t u) = R + t
    calls = []
    res = Armijo(max_trials=5).search(lambda t: calls.append(t) or 1.0 + t, r0=1.0, slope=-1.0)
    assert not res.accepted and res.trials == 5 and res.decrease == 0.0 and res.value == 1.0
    assert calls == [1.0, 0.5, 0.25, 0.125, 0.0625]


def test_nan_trial_is_never_accepted():
    res = Armijo(max_trials=3).search(lambda t: math.nan if t > 0.3 else 0.0, r0=1.0, slope=-1.0)
    assert res.accepted and res.t == 0.25 and res.trials == 3


@given(st.floats(1e-3, 1e3), st.floats(-1e3, -1e-6), st.floats(0.05, 0.95), st.floats(1e-6, 0.5))
def test_accepted_steps_meet_their_bound_on_a_kink(curv, slope, shrink, c):
    # R(θ − t u) = r0 + slope·t + curv·t² ( a piece that turns up), with a kink-like |t − t0| term
    r0 = 1.0
    f = lambda t: r0 + slope * t + curv * t * t + 10 * abs(t - 0.3) - 3.0  # noqa: E731
    res = Armijo(c=c, shrink=shrink, max_trials=60).search(f, r0=f(0.0), slope=slope)
    if res.accepted:
        assert res.value <= res.bound < f(0.0)
        assert res.decrease >= c * res.t * -slope
    else:
        assert res.value == f(0.0)


@pytest.mark.parametrize(
    "kwargs", [{"c": 0}, {"c": 1}, {"shrink": 1.5}, {"shrink": -1}, {"max_trials": 0}]
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises((ValueError, TypeError)):
        Armijo(**kwargs)
