"""Every rule's certificate against the exact oracle on finite max problems (a max over the
simplex of quadratic pieces) with exact ties and ties up to rounding: no certificate overpromises,
DDi with a tolerance is the exact steepest descent, and rounding ties need that tolerance."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minimax as mm
from minimax.testing import (
    TIES,
    assert_descent_direction,
    conflicting_pieces,
    danskin_set,
    finite_max_problems,
)

F64 = torch.float64
TOL = 1e-9


def _exact_derivative(kp, direction) -> float:
    """R'(θ; −d) over the oracle's active sets (Danskin's formula)."""
    dset = danskin_set(kp)
    return float(dset.directional_derivative({k: -v for k, v in direction.vector.items()}))


@pytest.mark.parametrize("ties", TIES)
@given(data=st.data())
def test_certificates_never_overpromise(ties, data):
    kp = data.draw(finite_max_problems(ties=ties), label="problem")
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    rules = [
        mm.Danskin(certify=True),
        mm.MaxLoss(certify=True),
        mm.GroupDRO(certify=True),
        mm.DDi(tolerance=TOL),
    ]
    for rule in rules:
        d = rule(kp.problem, kp.params, kp.batch, cands)
        assert d.certificate is not None
        scale = max(1.0, float(d.norm) ** 2)
        assert _exact_derivative(kp, d) <= float(d.certificate) + 1e-9 * scale, rule


@pytest.mark.parametrize("ties", TIES)
@given(data=st.data())
def test_ddi_with_tolerance_is_the_exact_steepest_descent(ties, data):
    kp = data.draw(finite_max_problems(ties=ties, max_batch=3), label="problem")
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    per_example = kp.info["B"] > 1
    d = mm.DDi(tolerance=TOL, per_example=per_example)(kp.problem, kp.params, kp.batch, cands)
    gamma, gamma_norm, _ = danskin_set(kp).min_norm()
    scale = max(1.0, float(gamma_norm))
    torch.testing.assert_close(d.vector["theta"], gamma["theta"], atol=1e-7 * scale, rtol=0)
    torch.testing.assert_close(d.certificate, -(d.norm**2), atol=1e-9 * scale**2, rtol=0)
    if float(gamma_norm) > 1e-6:
        assert_descent_direction(kp, None, d)
        assert _exact_derivative(kp, d) == pytest.approx(-(float(gamma_norm) ** 2), abs=1e-8)


@pytest.mark.parametrize("ties", ["exact", "rounding"])
def test_ddi_with_tolerance_descends_where_danskin_does_not(ties):
    kp = conflicting_pieces(ties)
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    danskin = mm.Danskin(certify=True)(kp.problem, kp.params, kp.batch, cands)
    with pytest.raises(AssertionError, match="ascent direction"):
        assert_descent_direction(kp, None, danskin)
    assert _exact_derivative(kp, danskin) == pytest.approx(3.0)  # slope 3/√5 per unit, ‖d‖ = √5
    ddi = mm.DDi(tolerance=TOL)(kp.problem, kp.params, kp.batch, cands)
    check = assert_descent_direction(kp, None, ddi)
    assert check.derivative == pytest.approx(-1.0)  # the steepest slope, −‖γ*‖ = −1
    torch.testing.assert_close(ddi.vector["theta"], torch.tensor([1.0, 0.0], dtype=F64))


def test_rounding_ties_need_a_tolerance_and_inactive_pieces_fake_stationarity():
    kp = conflicting_pieces("rounding")
    assert kp.info["spread_ulps"] == [1] and kp.info["active"] == [[0, 1]]
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    strict = mm.DDi(tolerance=0.0)(kp.problem, kp.params, kp.batch, cands)
    assert float(strict.certificate) < 0  # claims descent from one piece, 1 ulp above the other
    assert _exact_derivative(kp, strict) > 0  # but the near-tied piece rises
    everything = mm.DDi()(kp.problem, kp.params, kp.batch, cands)  # the inactive piece included
    assert float(everything.norm) < 1e-12 < float(danskin_set(kp).min_norm()[1])
