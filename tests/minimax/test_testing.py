"""minimax.testing: its oracles, strategies and assertions, the library's rules checked with them,
the pytest plugin (through pytester) and the tutorial docs/testing.md (every python block run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, find, given, seed, settings
from hypothesis import strategies as st

import minimax as mm
from minimax.testing import (
    FAMILIES,
    GRAM_FAMILIES,
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
    linear_model,
    make_problem,
    max_of_pieces,
    multilinear_box,
    numbers,
    pieces_problems,
    tanh_network,
    tied_problems,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
# property tests draw 12 examples each (MINIMAX_TESTING_EXAMPLES raises it for a longer hunt)
FAST = settings(
    max_examples=int(os.environ.get("MINIMAX_TESTING_EXAMPLES", "12")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SEARCH = settings(max_examples=300, database=None, derandomize=True, print_blob=False)


# ------------------------------------------------------------------------------------------------
# The oracles are right
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@FAST
@given(data=st.data())
def test_oracles_are_exact_maxima(family, data):
    """R from the oracle equals g at the maximizers and bounds g at random points of S."""
    kp = data.draw(known_problems(families=(family,)), label="kp")
    cands = kp.candidates(mode="padded")
    per_example = kp.per_example_loss()
    assert torch.allclose(cands.values.max(0).values.double(), per_example, atol=1e-9, rtol=1e-9)
    assert torch.allclose(cands.values.min(0).values.double(), per_example, atol=1e-8, rtol=1e-8)
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    shape = kp.problem.delta_shape(kp.batch)
    pts = kp.problem.perturbation.random(
        (256, *shape), generator=gen, dtype=torch.float64, event_ndim=len(shape) - 1
    )
    with torch.no_grad():
        vals = mm.extend.engine_of(kp.problem).values(kp.params, pts, kp.batch)
    assert bool((vals <= per_example + 1e-9 * per_example.abs().clamp_min(1)).all())
    assert kp.problem.perturbation.contains(cands.deltas, event_ndim=len(shape) - 1).all()


def test_named_problems_match_the_paper():
    kp = counterexample(x=(1.0, 0.0))
    assert float(kp.robust_loss()) == 2.0
    assert kp.maximizers()[0].flatten().tolist() == [0.0, 1.0]
    moved = {"x": torch.tensor([1.0 - 0.1 * 2, 0.0], dtype=torch.float64)}
    assert float(kp.robust_loss(moved)) == pytest.approx((1 - 0.2) ** 2 + 1)
    assert float(bilinear(0.5).robust_loss()) == 0.5
    assert repr(make_problem("max_of_pieces")).startswith("max_of_pieces(a=")
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("nope")


def test_repr_rebuilds_the_problem():
    for name in (
        "counterexample",
        "bilinear",
        "max_of_pieces",
        "multilinear_box",
        "linear_model",
        "tanh_network",
    ):
        kp = make_problem(name)
        rebuilt = eval(repr(kp), vars(__import__("minimax.testing", fromlist=["*"])))
        assert isinstance(rebuilt, KnownProblem)
        assert rebuilt.fingerprint() == kp.fingerprint()
        assert torch.equal(rebuilt.robust_loss(), kp.robust_loss())


def test_family_arguments_are_validated():
    with pytest.raises(ValueError, match="gaps"):
        max_of_pieces(gaps=[[-1.0, 0.0]])
    with pytest.raises(ValueError, match="2\\^k"):
        multilinear_box(w=[[[0.0]] * 3], v=[[0.0] * 3])
    with pytest.raises(ValueError, match="finite set"):
        linear_model(w=[0.0, 0.0], norm="2")
    with pytest.raises(ValueError, match="d ∈"):
        tanh_network(W=[[1.0, 1.0, 1.0]], c=[0.0], v=[1.0], x=[[0.0, 0.0, 0.0]])


# ------------------------------------------------------------------------------------------------
# The library's rules, checked
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# DDi's tolerance option: candidates that are not maximizers
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# Min-norm: Gram matrices and the KKT assertion
# ------------------------------------------------------------------------------------------------


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


def test_gram_families_are_what_they_say():
    corr = gram_case("correlated", m=6, n=50, seed=1).vectors
    unit = corr / corr.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    assert 0.97 < float(cos[~torch.eye(6, dtype=torch.bool)].mean()) < 0.999
    rd = gram_case("rank_deficient", m=6, n=2)
    assert int(torch.linalg.matrix_rank(rd.gram)) == 2
    pm = gram_case("origin_in_hull", m=5, n=3)
    assert torch.equal(pm.vectors[:2], -pm.vectors[2:4])
    assert gram_case("gaussian", 3, 2, scale=1e12).gram.abs().max() > 1e10
    expected = "gram_case('gaussian', m=3, n=2, seed=7, scale=1)"
    assert repr(gram_case("gaussian", 3, 2, seed=7)) == expected
    with pytest.raises(ValueError, match="n < m"):
        gram_case("rank_deficient", m=2, n=2)
    assert set(GRAM_FAMILIES) == {"gaussian", "correlated", "rank_deficient", "origin_in_hull"}


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


# ------------------------------------------------------------------------------------------------
# Reproducibility
# ------------------------------------------------------------------------------------------------


def _draw_twice(strategy: st.SearchStrategy, key) -> tuple[list, list]:
    def run() -> list:
        out: list = []

        @seed(20240611)
        @settings(max_examples=8, database=None, phases=["generate"])
        @given(strategy)
        def collect(x):
            out.append(key(x))

        collect()
        return out

    return run(), run()


def test_same_draw_gives_identical_tensors():
    first, second = _draw_twice(known_problems(), lambda kp: kp.fingerprint())
    assert first == second and len(first) == 8
    g1, g2 = _draw_twice(gram_matrices(), lambda c: (c.family, c.seed, c.vectors.tolist()))
    assert g1 == g2
    a, b = gram_case("correlated", 5, 3, seed=42), gram_case("correlated", 5, 3, seed=42)
    assert torch.equal(a.vectors, b.vectors)


def test_importable_without_pytest():
    code = "import sys; sys.modules['pytest'] = None; import minimax.testing"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr


# ------------------------------------------------------------------------------------------------
# The pytest plugin, in a user's suite
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# The tutorial runs
# ------------------------------------------------------------------------------------------------

BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def test_docs_testing_blocks_run():
    text = (ROOT / "docs" / "testing.md").read_text()
    blocks = BLOCK.findall(text)
    assert len(blocks) >= 8
    namespace: dict = {"__name__": "docs_testing"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/testing.md[block {i}]", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            pytest.fail(f"docs/testing.md block {i} failed: {err!r}\n{code}")
    # the output quoted in the docs has the shape this run produces: hypothesis shrinks to two
    # tied quadratic pieces in R² (which of the equivalent minimal examples it stops at can vary)
    failure = str(namespace["danskin_failure"])
    assert failure.splitlines()[0] in text
    assert "max_of_pieces(a=[[1.0, 1.0]]" in failure and "k = 2 pieces, θ ∈ R^2, B = 1" in failure
    assert "R'(θ; −d̂) = Σ_b max_δ ⟨−d̂, ∇θ g⟩/B = +0" in failure
    assert "MeanGradient()" in str(namespace["mean_failure"])
