"""The finite max builder and strategy of minimax.testing: exact ties, ties up to rounding (in
ulps), active sets, bad arguments."""

from __future__ import annotations

import pytest

from minimax.testing import (
    finite_max,
    shift_ulps,
)


def test_finite_max_builder_and_strategy_ties():
    exact = finite_max(top=[[1.5, 1.5]])
    assert exact.info["spread_ulps"] == [0] and exact.tied()
    rounding = finite_max(top=[[1.5, shift_ulps(1.5, 3)]])
    assert rounding.info["spread_ulps"] == [3] and rounding.tied()
    assert finite_max(top=[[1.5, 1.0]]).info["active"] == [[0]]
    with pytest.raises(ValueError):
        finite_max(a=[[1.0, -1.0]])
