"""The certified step: MinMaxOptimizer(step_size=Armijo) on exact finite maxima."""

import math

import pytest
import torch
from hypothesis import given

import minimax as mm
from minimax.linesearch import Armijo, LineSearchResult
from minimax.testing import (
    assert_certified_step,
    certified_step_cases,
    conflicting_pieces,
    exact_objective,
)


def _opt(known, rule, lr=1.0, step_size="armijo", optimizer=None, **kw):
    p = known.problem
    theta = list(p.parameters().values())
    opt = optimizer(theta) if optimizer else torch.optim.SGD(theta, lr=lr)
    return mm.MinMaxOptimizer(p, opt, mm.Enumerate(), rule, step_size=step_size, **kw)


def _exact(known):
    return exact_objective(known)


@pytest.mark.parametrize("ties", ["exact", "rounding"])
def test_ddi_armijo_decreases_the_exact_objective_at_a_kink(ties):
    known = conflicting_pieces(ties)
    opt = _opt(known, mm.DDi(tolerance=1e-6), lr=4.0)
    for _ in range(8):
        r0 = _exact(known)
        report = opt.step(known.batch)
        assert report.t is not None and (report.trials >= 1 or report.slope >= 0)
        assert report.robust_loss == pytest.approx(r0, abs=1e-12)
        assert report.robust_loss_after == pytest.approx(_exact(known), abs=1e-12)
        assert not report.went_up
        if report.t > 0:
            assert report.realised_decrease >= report.certified_decrease > 0
            assert report.lr == report.t * 4.0


def test_trials_are_counted_apart():
    known = conflicting_pieces("exact")
    opt = _opt(known, mm.DDi(tolerance=1e-6), lr=4.0)
    plain = _opt(conflicting_pieces("exact"), mm.DDi(tolerance=1e-6), lr=4.0, step_size=None)
    report, ref = opt.step(known.batch), plain.step(known.batch)
    assert (report.forward, report.backward) == (ref.forward, ref.backward)
    assert report.trials > 1 and report.trial_forward > 0
    assert report.trial_forward % report.trials == 0 and report.trial_backward == 0
    assert opt.engine.passes.snapshot() == (ref.forward, ref.backward)


def test_plain_sgd_uses_the_certificate_and_t1_is_the_optimizer_step():
    known = conflicting_pieces("exact")
    opt = _opt(known, mm.DDi(tolerance=1e-6), lr=0.01)
    ref_known = conflicting_pieces("exact")
    ref = _opt(ref_known, mm.DDi(tolerance=1e-6), lr=0.01, step_size=None)
    report, _ = opt.step(known.batch), ref.step(ref_known.batch)
    assert report.t == 1.0 and report.trials == 1
    assert report.slope == pytest.approx(0.01 * report.certificate)
    a, b = known.problem.parameters()["theta"], ref_known.problem.parameters()["theta"]
    assert torch.equal(a, b)


def test_momentum_uses_the_update_and_a_refused_step_restores_everything():
    known = conflicting_pieces("exact")
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1)  # noqa: E731
    opt = _opt(known, mm.DDi(tolerance=1e-6), optimizer=sgd, step_size=Armijo(max_trials=1, c=0.9))
    opt.step(known.batch)
    theta = known.problem.parameters()["theta"].detach().clone()
    state = {
        k: v.clone() for k, v in opt.optimizer.state[known.problem.parameters()["theta"]].items()
    }
    # an objective that never passes: a huge c with one trial, at a stationary point of nothing
    opt.step_size = Armijo(max_trials=1, c=0.999999)
    report = opt.step(known.batch)
    assert report.t == 0 and report.trials == 1
    assert torch.equal(known.problem.parameters()["theta"], theta)
    new = opt.optimizer.state[known.problem.parameters()["theta"]]
    assert state and all(torch.equal(new[k], v) for k, v in state.items())
    assert report.robust_loss_after == report.robust_loss and report.lr == 0.0
    # momentum and weight decay: the slope is −⟨d, u⟩, not lr·certificate
    assert report.slope != pytest.approx(0.1 * report.certificate)


def test_no_search_is_bitwise_the_old_step():
    a, b = conflicting_pieces("exact"), conflicting_pieces("exact")
    oa, ob = _opt(a, mm.Danskin(), lr=0.3, step_size=None), _opt(b, mm.Danskin(), lr=0.3)
    ra = oa.step(a.batch)
    assert ra.t is None and ra.trials is None and ra.lr is None
    ob.step_size = None
    ob.step(b.batch)
    assert torch.equal(a.problem.parameters()["theta"], b.problem.parameters()["theta"])


def test_nan_trial_is_never_accepted_under_skip():
    known = conflicting_pieces("exact")
    opt = _opt(known, mm.DDi(tolerance=1e-6), lr=1e308, nonfinite="skip")
    report = opt.step(known.batch)
    assert report.trials > 1  # the huge steps overflow: never accepted
    assert math.isfinite(report.robust_loss_after) and not report.went_up
    assert torch.isfinite(known.problem.parameters()["theta"]).all()


def test_bad_step_size_is_refused():
    with pytest.raises(ValueError, match="step_size"):
        _opt(conflicting_pieces("exact"), mm.DDi(tolerance=1e-6), step_size="wolfe")


# ------------------------------------------------------------------------------------------------
# DDi with a shrinking tolerance
# ------------------------------------------------------------------------------------------------


def test_shrinking_tolerance_is_read_updated_and_saved():
    tol = mm.ShrinkingTolerance(0.5, shrink=0.5, ratio=1e6, minimum=0.01)
    rule = mm.DDi(tolerance=tol)
    assert "ShrinkingTolerance(0.5" in repr(rule) and rule.tau == 0.5
    known = conflicting_pieces("exact")
    opt = _opt(known, rule, lr=1.0)
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


# ------------------------------------------------------------------------------------------------
# property: DDi + Armijo never increases the exact objective at kinks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ties", ["exact", "rounding"])
def test_certified_steps_never_increase_the_exact_objective(ties):
    counts = {"steps": 0, "accepted": 0, "increases": 0}

    @given(case=certified_step_cases(ties))
    def run(case):
        opt = case.optimizer()
        for _ in range(4):
            before = exact_objective(case.known)
            report = assert_certified_step(case.known, opt)
            counts["steps"] += 1
            counts["accepted"] += report.t > 0
            counts["increases"] += exact_objective(case.known) > before

    run()
    assert counts["increases"] == 0 and counts["accepted"] > 0


def test_assert_certified_step_catches_an_increase():
    known = conflicting_pieces("exact")
    opt = _opt(known, mm.Danskin(), lr=1.0, step_size=None)
    with pytest.raises(ValueError, match="step_size"):
        assert_certified_step(known, opt)
    # a search that always accepts (c → 0 with a fake slope) along Danskin's ascent direction
    opt = _opt(known, mm.Danskin(certify=True), lr=1.0)
    opt.step_size = _Always()
    with pytest.raises(AssertionError, match="increased R"):
        assert_certified_step(known, opt)


class _Always(Armijo):
    """Accepts t = 1 whatever R does (a broken search, for the assertion's own test)."""

    def search(self, objective, r0, slope):
        value = float(objective(1.0))
        return LineSearchResult(1.0, 1, -1.0, r0, value, r0 - value)
