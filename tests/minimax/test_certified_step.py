"""The certified step: MinMaxOptimizer(step_size=Armijo) on exact finite maxima."""

import math

import pytest
import torch
from hypothesis import given

import minimax as mm
from minimax.linesearch import Armijo
from minimax.testing import (
    assert_certified_step,
    certified_step_cases,
    conflicting_pieces,
    exact_objective,
)


def _exact(known):
    return exact_objective(known)


@pytest.mark.parametrize("ties", ["exact", "rounding"])
def test_ddi_armijo_decreases_the_exact_objective_at_a_kink(enumerate_optimizer, ties):
    known = conflicting_pieces(ties)
    opt = enumerate_optimizer(known, mm.DDi(tolerance=1e-6), lr=4.0)
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


def test_trials_are_counted_apart(enumerate_optimizer):
    known = conflicting_pieces("exact")
    opt = enumerate_optimizer(known, mm.DDi(tolerance=1e-6), lr=4.0)
    plain = enumerate_optimizer(
        conflicting_pieces("exact"), mm.DDi(tolerance=1e-6), lr=4.0, step_size=None
    )
    report, ref = opt.step(known.batch), plain.step(known.batch)
    assert (report.forward, report.backward) == (ref.forward, ref.backward)
    assert report.trials > 1 and report.trial_forward > 0
    assert report.trial_forward % report.trials == 0 and report.trial_backward == 0
    assert opt.engine.passes.snapshot() == (ref.forward, ref.backward)


def test_plain_sgd_uses_the_certificate_and_t1_is_the_optimizer_step(enumerate_optimizer):
    known = conflicting_pieces("exact")
    opt = enumerate_optimizer(known, mm.DDi(tolerance=1e-6), lr=0.01)
    ref_known = conflicting_pieces("exact")
    ref = enumerate_optimizer(ref_known, mm.DDi(tolerance=1e-6), lr=0.01, step_size=None)
    report, _ = opt.step(known.batch), ref.step(ref_known.batch)
    assert report.t == 1.0 and report.trials == 1
    assert report.slope == pytest.approx(0.01 * report.certificate)
    a, b = known.problem.parameters()["theta"], ref_known.problem.parameters()["theta"]
    assert torch.equal(a, b)


def test_momentum_uses_the_update_and_a_refused_step_restores_everything(enumerate_optimizer):
    known = conflicting_pieces("exact")
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1)  # noqa: E731
    opt = enumerate_optimizer(
        known, mm.DDi(tolerance=1e-6), optimizer=sgd, step_size=Armijo(max_trials=1, c=0.9)
    )
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


def test_no_search_is_bitwise_the_old_step(enumerate_optimizer):
    a, b = conflicting_pieces("exact"), conflicting_pieces("exact")
    oa, ob = (
        enumerate_optimizer(a, mm.Danskin(), lr=0.3, step_size=None),
        enumerate_optimizer(b, mm.Danskin(), lr=0.3),
    )
    ra = oa.step(a.batch)
    assert ra.t is None and ra.trials is None and ra.lr is None
    ob.step_size = None
    ob.step(b.batch)
    assert torch.equal(a.problem.parameters()["theta"], b.problem.parameters()["theta"])


def test_nan_trial_is_never_accepted_under_skip(enumerate_optimizer):
    known = conflicting_pieces("exact")
    opt = enumerate_optimizer(known, mm.DDi(tolerance=1e-6), lr=1e308, nonfinite="skip")
    report = opt.step(known.batch)
    assert report.trials > 1  # the huge steps overflow: never accepted
    assert math.isfinite(report.robust_loss_after) and not report.went_up
    assert torch.isfinite(known.problem.parameters()["theta"]).all()


def test_bad_step_size_is_refused(enumerate_optimizer):
    with pytest.raises(ValueError, match="step_size"):
        enumerate_optimizer(conflicting_pieces("exact"), mm.DDi(tolerance=1e-6), step_size="wolfe")


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
