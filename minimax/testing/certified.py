"""Certified steps: an assertion that a line-searched step kept its promise on an exact
objective, and a strategy that puts the search at kinks.

`assert_certified_step(known, optimizer)` takes one step of a `minimax.MinMaxOptimizer` built
with a ``step_size`` (an Armijo search) on a `KnownProblem` whose inner max is exact, and checks
it against the problem's own objective R(θ) = mean_b max_δ g: R did not increase; an accepted
step met R(θ₁) ≤ R(θ₀) + c·t·s up to rounding and the report's ``robust_loss_after`` is R(θ₁);
a refused step left θ bitwise. `certified_step_cases` draws finite-max problems with exact ties
or ties up to rounding (`finite_max_problems`), a learning rate from tiny to far too long, and an
Armijo search and DDi tolerance, so that the searches start at a kink and often overshoot it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from minimax.inner.enumerate import Enumerate
from minimax.linesearch import Armijo
from minimax.optim import MinMaxOptimizer
from minimax.rules import DDi
from minimax.step_report import StepReport
from minimax.testing.finite import Ties, finite_max_problems
from minimax.testing.problems import KnownProblem

__all__ = ["CertifiedCase", "assert_certified_step", "certified_step_cases", "exact_objective"]


def exact_objective(known: KnownProblem) -> float:
    """R(θ) = mean_b max_δ g(θ, δ; b) at the problem's current parameters, from its oracle."""
    with torch.no_grad():
        return float(known.per_example_loss(known.problem.parameters()).mean())


def assert_certified_step(
    known: KnownProblem, optimizer: MinMaxOptimizer, *, rtol: float = 1e-12
) -> StepReport:
    """One ``optimizer.step(known.batch)``; raise AssertionError unless the step kept its promise
    on the exact objective (see the module's docstring). ``rtol`` (relative to max(1, |R|)):
    the rounding allowed between the search's R and the oracle's. Returns the step's report."""
    if optimizer.step_size is None:
        raise ValueError("assert_certified_step needs MinMaxOptimizer(..., step_size=...)")
    params = known.problem.parameters()
    theta0 = {k: v.detach().clone() for k, v in params.items()}
    before = exact_objective(known)
    report = optimizer.step(known.batch)
    after = exact_objective(known)
    slack = rtol * max(1.0, abs(before))
    where = f"{known!r}, {optimizer!r}: R {before!r} → {after!r}, report {report!r}"
    assert report.t is not None and report.robust_loss_after is not None, where
    assert after <= before + slack, f"the certified step increased R: {where}"
    assert abs(report.robust_loss_after - after) <= slack, f"robust_loss_after ≠ R: {where}"
    if report.t > 0:
        assert report.slope is not None and report.slope < 0, where
        bound = before + optimizer.step_size.c * report.t * report.slope
        assert after <= bound + slack, f"accepted above the Armijo bound {bound!r}: {where}"
    else:
        for k, v in params.items():
            assert torch.equal(v, theta0[k]), f"a refused step moved θ[{k!r}]: {where}"
    return report


@dataclass(frozen=True)
class CertifiedCase:
    """A finite-max problem at a kink, with the step settings to try on it."""

    known: KnownProblem
    lr: float
    search: Armijo
    tolerance: float | None

    def optimizer(self) -> MinMaxOptimizer:
        """Plain SGD at ``lr`` with DDi(tolerance) and the exact inner max (`Enumerate`)."""
        theta = list(self.known.problem.parameters().values())
        return MinMaxOptimizer(
            self.known.problem,
            torch.optim.SGD(theta, lr=self.lr),
            Enumerate(),
            DDi(tolerance=self.tolerance),
            step_size=self.search,
        )


@st.composite
def certified_step_cases(
    draw: st.DrawFn, ties: Ties = "exact", *, max_pieces: int = 5, max_dim: int = 3
) -> CertifiedCase:
    """`CertifiedCase`s: a `finite_max_problems` draw (ties exact, up to rounding, or None), a
    learning rate 10^[-3, 2] (far past the kink at the top), Armijo c ∈ {1e-4, 0.1, 0.5} and
    β ∈ {0.5, 0.1}, DDi's tolerance None, 0, 1e-9 or 0.1."""
    known = draw(finite_max_problems(ties, max_pieces=max_pieces, max_dim=max_dim))
    lr = 10.0 ** draw(st.floats(-3, 2), label="log10 lr")
    c = draw(st.sampled_from([1e-4, 0.1, 0.5]), label="c")
    shrink = draw(st.sampled_from([0.5, 0.1]), label="shrink")
    tolerance = draw(st.sampled_from([None, 0.0, 1e-9, 0.1]), label="tolerance")
    return CertifiedCase(known, lr, Armijo(c=c, shrink=shrink, max_trials=60), tolerance)
