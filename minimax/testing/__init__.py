"""Property-testing tools for descent claims: known problems, hypothesis strategies, assertions.

Importable without pytest (it needs only hypothesis and torch). The pytest fixtures live in
`minimax.testing.plugin`; enable them with one line in a ``conftest.py``::

    pytest_plugins = ["minimax.testing.plugin"]

Typical use::

    from hypothesis import given
    from minimax import DDi
    from minimax.testing import assert_rule_descends, known_problems

    @given(known_problems())
    def test_ddi_descends(kp):
        assert_rule_descends(DDi(), kp)
"""

from minimax.testing.assertions import (
    DescentCheck,
    assert_descent_direction,
    assert_min_norm_optimal,
    assert_rule_descends,
    assert_stationary,
)
from minimax.testing.certified import (
    CertifiedCase,
    assert_certified_step,
    certified_step_cases,
    exact_objective,
)
from minimax.testing.finite import (
    TIES,
    conflicting_pieces,
    finite_max,
    finite_max_problems,
    shift_ulps,
)
from minimax.testing.near_ties import (
    circumcenter_pieces,
    near_tie_counterexample,
    near_tie_problems,
)
from minimax.testing.problems import (
    PROBLEMS,
    DanskinSet,
    ExactInner,
    KnownProblem,
    bilinear,
    counterexample,
    danskin_set,
    linear_model,
    make_problem,
    max_of_pieces,
    multilinear_box,
    tanh_network,
)
from minimax.testing.strategies import (
    FAMILIES,
    GRAM_FAMILIES,
    GramCase,
    gram_case,
    gram_matrices,
    known_problems,
    linear_problems,
    multilinear_problems,
    network_problems,
    numbers,
    pieces_problems,
    tied_problems,
)

__all__ = [
    "FAMILIES",
    "GRAM_FAMILIES",
    "PROBLEMS",
    "TIES",
    "CertifiedCase",
    "DanskinSet",
    "DescentCheck",
    "ExactInner",
    "GramCase",
    "KnownProblem",
    "assert_certified_step",
    "assert_descent_direction",
    "assert_min_norm_optimal",
    "assert_rule_descends",
    "assert_stationary",
    "bilinear",
    "certified_step_cases",
    "circumcenter_pieces",
    "conflicting_pieces",
    "counterexample",
    "danskin_set",
    "exact_objective",
    "finite_max",
    "finite_max_problems",
    "gram_case",
    "gram_matrices",
    "known_problems",
    "linear_model",
    "linear_problems",
    "make_problem",
    "max_of_pieces",
    "multilinear_box",
    "multilinear_problems",
    "near_tie_counterexample",
    "near_tie_problems",
    "network_problems",
    "numbers",
    "pieces_problems",
    "shift_ulps",
    "tanh_network",
    "tied_problems",
]
