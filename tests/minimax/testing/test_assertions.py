"""The assertions of minimax.testing on the library's rules: DDi descends on every family and at
ties, stationary points, readable failure reports (Danskin's on the counterexample, found and shrunk
by hypothesis), DDi's tolerance against decoy candidates, and the min-norm KKT assertion."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, find, given, settings
from hypothesis import strategies as st

import minimax as mm
from minimax.testing import (
    FAMILIES,
    KnownProblem,
    assert_descent_direction,
    assert_min_norm_optimal,
    assert_rule_descends,
    assert_stationary,
    bilinear,
    counterexample,
    danskin_set,
    gram_case,
    gram_matrices,
    known_problems,
    max_of_pieces,
    numbers,
    pieces_problems,
    tied_problems,
)
from tests.minimax.testing.examples import FAST, SEARCH


@pytest.mark.parametrize("per_example", [False, True], ids=["batch", "per_example"])
@pytest.mark.parametrize("family", FAMILIES)
@FAST
@given(data=st.data())
def test_ddi_descends_on_every_family(family, per_example, data):
    kp = data.draw(known_problems(families=(family,)), label="kp")
    assert_rule_descends(mm.DDi(per_example=per_example), kp)


@pytest.mark.parametrize("per_example", [False, True], ids=["batch", "per_example"])
@FAST
@given(kp=tied_problems(max_batch=2))
def test_ddi_descends_at_ties(kp, per_example):
    assert len(kp.maximizers()[0]) >= 2
    assert_rule_descends(mm.DDi(per_example=per_example), kp)


def test_ddi_through_descent_direction_and_exact_inner():
    kp = counterexample()
    d, cands = mm.descent_direction(kp.problem, kp.params, kp.batch, kp.exact_inner(), mm.DDi())
    assert cands.m == 2
    check = assert_descent_direction(kp, None, d)
    assert check.derivative == pytest.approx(-2.0)
    assert check.min_norm == pytest.approx(2.0)
    assert all(change is not None and change < 0 for _, change in check.steps)
    with pytest.raises(ValueError, match="own KnownProblem"):
        kp.exact_inner()(bilinear().problem, bilinear().params, None)


@pytest.mark.parametrize("rule", [mm.DDi(), mm.DDi(per_example=True)], ids=repr)
def test_stationary_points(rule):
    for kp in (bilinear(0.0), counterexample(x=(0.0, 0.0)), max_of_pieces()):
        d = rule(kp.problem, kp.params, kp.batch, kp.candidates())
        assert float(d.norm) <= 1e-12
        assert assert_stationary(kp) <= 1e-12
        assert_rule_descends(rule, kp)  # only stationarity is asserted there


def test_not_stationary_report():
    with pytest.raises(AssertionError) as err:
        assert_stationary(counterexample(x=(1.0, 0.0)))
    msg = str(err.value)
    assert "Not stationary: ‖γ*‖ = 2" in msg
    assert "counterexample(x=[1.0, 0.0])" in msg
    assert "γ* = {'x': [2, 0]}" in msg


def test_danskin_report_on_the_paper_counterexample():
    kp = counterexample(x=(1.0, 0.0))
    d = mm.Danskin()(kp.problem, kp.params, kp.batch, kp.candidates())
    with pytest.raises(AssertionError) as err:
        assert_descent_direction(kp, kp.params, d)
    msg = str(err.value)
    for part in (
        "Not a descent direction",
        "counterexample(x=[1.0, 0.0])",
        "θ = {'x': [1, 0]}",
        "2 maximizer(s)",
        "δ = [0]",
        "δ = [1]",
        "R'(θ; −d̂)",
        "η = 0.0001",
        "slope −‖γ*‖ = -2",
    ):
        assert part in msg, part
    # a dict works as the direction too, and a plain Problem with explicit maximizers
    with pytest.raises(AssertionError, match="not a strict descent"):
        assert_descent_direction(kp.problem, None, dict(d.vector), maximizers=kp.maximizers())
    assert_descent_direction(
        kp.problem,
        None,
        {"x": torch.tensor([2.0, 0.0])},
        maximizers=kp.maximizers(),
        robust_loss=kp.robust_loss,
    )


def test_zero_direction_is_not_descent():
    kp = counterexample()
    with pytest.raises(AssertionError, match="zero"):
        assert_descent_direction(kp, None, {"x": torch.zeros(2)})
    with pytest.raises(TypeError):
        assert_descent_direction(kp, None, [1.0, 2.0])  # type: ignore[arg-type]


def _danskin_fails(kp: KnownProblem) -> bool:
    try:
        assert_rule_descends(mm.Danskin(), kp)
    except AssertionError:
        return True
    return False


def test_hypothesis_finds_and_shrinks_the_danskin_counterexample(capsys):
    shrunk = find(
        tied_problems(families=("max_of_pieces",), max_dim=2), _danskin_fails, settings=SEARCH
    )
    print("shrunk Danskin counterexample:", repr(shrunk))
    assert shrunk.info["k"] == 2 and shrunk.info["B"] == 1 and shrunk.info["dim"] <= 2
    assert len(shrunk.maximizers()[0]) == 2
    # the same point is fine for DDi, and the failure is reported with its numbers
    assert_rule_descends(mm.DDi(), shrunk)
    with pytest.raises(AssertionError, match="Danskin"):
        assert_rule_descends(mm.Danskin(), shrunk)
    assert "max_of_pieces(a=" in capsys.readouterr().out


def test_hypothesis_given_reports_the_shrunk_problem():
    @settings(SEARCH)
    @given(tied_problems(families=("max_of_pieces",), max_dim=2))
    def inner(kp):
        assert_rule_descends(mm.Danskin(), kp)

    with pytest.raises(AssertionError) as err:
        inner()
    notes = "\n".join(getattr(err.value, "__notes__", []))
    assert "max_of_pieces(a=" in notes, notes


DECOY_CASE = dict(
    a=[[1.0, 1.0, 1.0]],
    c=[[[-1.0, -1.0], [1.0, -1.0], [0.0, 1.0]]],
    gaps=[[0.0, 0.0, 1.0]],
    theta=[0.0, 0.0],
)


def test_tolerance_drops_decoys_on_a_fixed_case():
    kp = max_of_pieces(**DECOY_CASE)
    node = torch.tensor([[[2.0]]], dtype=torch.float64)  # the lower piece's node: 1 below the max
    cands = kp.candidates(extra=node)
    for per_example in (False, True):
        ok = mm.DDi(tolerance=0.5, per_example=per_example)(kp.problem, kp.params, kp.batch, cands)
        check = assert_descent_direction(kp, None, ok)
        assert check.derivative == pytest.approx(-1.0)
        bad = mm.DDi(per_example=per_example)(kp.problem, kp.params, kp.batch, cands)
        assert float(bad.norm) <= 1e-12  # the decoy's gradient (0, −1) closes the hull around 0
        with pytest.raises(AssertionError, match="zero"):
            assert_descent_direction(kp, None, bad)


def _decoys(kp: KnownProblem, n: int = 2, seed: int = 0) -> torch.Tensor | None:
    """n points per example at least 0.2 below the max (None if some example has none)."""
    try:
        return kp.decoys(n, below=0.2, seed=seed)
    except ValueError:
        return None


@pytest.mark.parametrize("per_example", [False, True], ids=["batch", "per_example"])
@FAST
@given(kp=pieces_problems(tied=True, max_batch=2), data=st.data())
def test_tolerance_ignores_decoys(kp, per_example, data):
    """Decoys ≥ 0.2 below the max change nothing for DDi(tolerance=0.1)."""
    decoys = _decoys(
        kp, data.draw(st.integers(1, 3), label="n"), data.draw(st.integers(0, 100), label="seed")
    )
    assume(decoys is not None)
    assert decoys is not None
    plain = kp.candidates()
    noisy = kp.candidates(extra=decoys)
    assert noisy.m == plain.m + decoys.shape[0]
    rule = mm.DDi(tolerance=0.1, per_example=per_example)
    d_noisy = assert_rule_descends(rule, kp, extra=decoys)
    d_plain = rule(kp.problem, kp.params, kp.batch, plain)
    for k in d_plain.vector:
        assert torch.allclose(d_noisy.vector[k], d_plain.vector[k], atol=1e-9)


def test_without_tolerance_decoys_can_break_descent():
    def breaks(kp: KnownProblem) -> bool:
        extra = _decoys(kp)
        if extra is None or float(danskin_set(kp).min_norm()[1]) <= 1e-7:
            return False
        try:
            assert_rule_descends(mm.DDi(), kp, extra=extra)
        except AssertionError:
            return True
        return False

    @st.composite
    def two_tied_and_a_lower_piece(draw: st.DrawFn) -> KnownProblem:
        n = draw(st.integers(1, 2))
        c = [[[draw(numbers(-2, 2)) for _ in range(n)] for _ in range(3)]]
        theta = [draw(numbers(-2, 2)) for _ in range(n)]
        return max_of_pieces([[1.0, 1.0, 1.0]], c, [[0.0, 0.0, draw(numbers(0.25, 2))]], theta)

    kp = find(two_tied_and_a_lower_piece(), breaks, settings=settings(SEARCH, max_examples=200))
    print("DDi() broken by decoys:", repr(kp))
    extra = _decoys(kp)
    assert_rule_descends(mm.DDi(tolerance=0.1), kp, extra=extra)  # the tolerance fixes it


@FAST
@given(case=gram_matrices(max_m=7))
def test_min_norm_solvers_are_optimal_on_hard_grams(case):
    for method in ("wolfe", "nnls"):
        res = mm.min_norm_weights(case.gram, method=method)
        assert_min_norm_optimal(res.weights, case.gram, tol=1e-8)
    if case.family == "origin_in_hull":
        assert float(mm.min_norm_weights(case.gram).sq_norm) <= 1e-10 * float(case.gram.trace())


@FAST
@given(case=gram_matrices(max_m=6), split=st.integers(1, 5))
def test_product_min_norm_is_optimal(case, split):
    assume(case.m >= 2)
    sizes = [min(split, case.m - 1), case.m - min(split, case.m - 1)]
    res = mm.linalg.min_norm_product_weights(case.gram, sizes)
    assert_min_norm_optimal(res.weights, case.gram, tol=1e-8, block_sizes=sizes)


def test_min_norm_assertion_reports_violations():
    case = gram_case("gaussian", m=4, n=2, seed=3)
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    with pytest.raises(AssertionError) as err:
        assert_min_norm_optimal(uniform, case.gram)
    msg = str(err.value)
    assert "Not an optimal min-norm weight vector" in msg and "a vertex is better" in msg
    with pytest.raises(AssertionError, match="Σ α"):
        assert_min_norm_optimal(torch.tensor([0.5, 0.6]), torch.eye(2))
    with pytest.raises(AssertionError, match="negative"):
        assert_min_norm_optimal(torch.tensor([1.5, -0.5]), torch.eye(2))
    assert_min_norm_optimal(torch.tensor([0.5, 0.5]), torch.eye(2))
    assert_min_norm_optimal(torch.tensor([0.3, 0.7]), torch.zeros(2, 2))  # every point optimal
