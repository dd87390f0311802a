"""assert_certified_step: it needs a line search, and it catches a search that lets the exact
objective increase."""

import pytest

import minimax as mm
from minimax.linesearch import Armijo, LineSearchResult
from minimax.testing import (
    assert_certified_step,
    conflicting_pieces,
)


def test_assert_certified_step_catches_an_increase(enumerate_optimizer):
    known = conflicting_pieces("exact")
    opt = enumerate_optimizer(known, mm.Danskin(), lr=1.0, step_size=None)
    with pytest.raises(ValueError, match="step_size"):
        assert_certified_step(known, opt)
    # a search that always accepts (c → 0 with a fake slope) along Danskin's ascent direction
    opt = enumerate_optimizer(known, mm.Danskin(certify=True), lr=1.0)
    opt.step_size = _Always()
    with pytest.raises(AssertionError, match="increased R"):
        assert_certified_step(known, opt)


class _Always(Armijo):
    """Accepts t = 1 whatever R does (a broken search, for the assertion's own test)."""

    def search(self, objective, r0, slope):
        value = float(objective(1.0))
        return LineSearchResult(1.0, 1, -1.0, r0, value, r0 - value)
