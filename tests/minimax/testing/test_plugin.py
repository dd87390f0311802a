"""The pytest plugin of minimax.testing in a user's suite (through pytester): one line gives the
seeded fixtures, the known-problem factory and the assertions."""

from __future__ import annotations

pytest_plugins = ["pytester"]


USER_TESTS = """
import torch
import minimax as mm
import pytest
from hypothesis import given, settings
from minimax.testing import known_problems

SEEN = {}

def test_seed_is_per_test_and_applied(minimax_seed, minimax_generator):
    SEEN["a"] = minimax_seed
    assert torch.initial_seed() == minimax_seed
    assert minimax_generator.initial_seed() == minimax_seed

def test_seed_differs_between_tests(minimax_seed):
    assert minimax_seed != SEEN["a"]

def test_factory_and_assertions(known_problem, assert_descent, assert_stationary,
                                assert_rule_descends):
    kp = known_problem("counterexample", x=(1.0, 0.0))
    d = mm.DDi()(kp.problem, kp.params, kp.batch, kp.candidates())
    assert_descent(kp, kp.params, d)
    assert_stationary(known_problem("bilinear", theta=0.0))
    assert_rule_descends(mm.DDi(per_example=True), known_problem("linear_model"))

def test_danskin_fails(known_problem, assert_rule_descends):
    with pytest.raises(AssertionError, match="Not a descent direction"):
        assert_rule_descends(mm.Danskin(), known_problem("counterexample"))

@settings(max_examples=3, deadline=None)
@given(known_problems(families=("max_of_pieces", "linear_model")))
def test_property(kp):
    from minimax.testing import assert_rule_descends
    assert_rule_descends(mm.DDi(), kp)
"""


def test_plugin_gives_fixtures_with_one_line(pytester):
    pytester.makeconftest('pytest_plugins = ["minimax.testing.plugin"]\n')
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--minimax-seed", "3")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*minimax.testing: --minimax-seed=3*"])
