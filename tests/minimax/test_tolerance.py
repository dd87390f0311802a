"""DDi's tolerance: a fixed τ is kept; a shrinking τ shrinks only when the direction is short, keeps
only the τ-active pieces, and is read, updated and saved through the optimizer's state."""

import math

import pytest

import minimax as mm
from minimax.testing import conflicting_pieces
from minimax.tolerance import ShrinkingTolerance


def test_shrinking_tolerance_is_read_updated_and_saved(enumerate_optimizer):
    tol = mm.ShrinkingTolerance(0.5, shrink=0.5, ratio=1e6, minimum=0.01)
    rule = mm.DDi(tolerance=tol)
    assert "ShrinkingTolerance(0.5" in repr(rule) and rule.tau == 0.5
    known = conflicting_pieces("exact")
    opt = enumerate_optimizer(known, rule, lr=1.0)
    report = opt.step(known.batch)
    assert rule.tau == 0.25  # ‖d‖² ≤ κτ: shrunk once
    assert float(report.candidates.values.shape[0]) == 3
    state = opt.state_dict()
    assert state["rule"] == {"tolerance": {"value": 0.25}}
    other = mm.DDi(tolerance=mm.ShrinkingTolerance(0.5, shrink=0.5, ratio=1e6, minimum=0.01))
    other.load_state_dict(state["rule"])
    assert other.tau == 0.25
    with pytest.raises(ValueError):
        other.load_state_dict({"tau": 1.0})
    with pytest.raises(ValueError):
        mm.DDi(tolerance=0.1).load_state_dict(state["rule"])


def test_fixed_tolerance_is_unchanged():
    rule = mm.DDi(tolerance=0.05)
    assert repr(rule) == "DDi(per_example=False, tolerance=0.05)" and rule.tau == 0.05
    assert rule.state_dict() == {}


def test_shrinking_tolerance_keeps_only_the_tau_active_pieces():
    known = conflicting_pieces("exact")  # piece 2 is 1 below: in the hull while τ ≥ 1
    rule = mm.DDi(tolerance=mm.ShrinkingTolerance(2.0, shrink=0.25, ratio=100.0))
    p = known.problem
    cands = mm.Enumerate()(p, p.parameters(), known.batch)
    first = rule(p, p.parameters(), known.batch, cands)
    assert float(first.norm) < 1e-12  # 0 in the hull of all three: τ shrinks to 0.5
    second = rule(p, p.parameters(), known.batch, cands)
    assert float(second.norm) == pytest.approx(1.0)  # the two tied pieces: d = (1, 0)


def test_tolerance_shrinks_only_when_the_direction_is_short():
    tol = ShrinkingTolerance(0.08, shrink=0.5, ratio=1.0, minimum=0.01)
    assert tol.update(1.0) == 0.08  # ‖d‖² = 1 > κτ = 0.08: progress at resolution τ, keep
    assert tol.update(0.2) == 0.04  # 0.04 ≤ 0.08: shrink
    assert tol.update(0.1) == 0.02
    assert tol.update(0.0) == 0.01 and tol.update(0.0) == 0.01  # the floor holds
    fresh = ShrinkingTolerance(0.08, minimum=0.01)
    fresh.load_state_dict(tol.state_dict())
    assert fresh.value == 0.01
    with pytest.raises(ValueError, match="outside"):
        fresh.load_state_dict({"value": 1.0})
    with pytest.raises(ValueError):
        tol.update(math.nan)
    with pytest.raises(ValueError):
        ShrinkingTolerance(0.01, minimum=0.1)
