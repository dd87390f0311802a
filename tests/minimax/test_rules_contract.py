"""Every rule in `minimax.extend.RULES` passes the same checks, built on the `minimax.testing`
assertions
(as TorchJD tests every aggregator): a new rule registered there is tested here with no new test.

The contract: the direction is shaped like θ and finite; its weights are float64, non-negative and
sum to 1 (per example for [B, m] weights); d = Σ weights · gradients; ``norm`` = ‖d‖; a rule over
the Gram matrix also certifies descent (certificate ≤ −‖d‖²) with KKT-optimal weights; and where
the maximizer is unique every rule descends.
"""

import pytest
import torch

import minimax as mm
from minimax.testing import (
    assert_min_norm_optimal,
    assert_rule_descends,
    counterexample,
    linear_model,
    max_of_pieces,
)
from minimax.testing.finite import finite_max

RULE_NAMES = mm.extend.RULES.names()


class MeanGradient(mm.extend.GramRule):
    """d = the mean of the candidate gradients: a test-only Gram rule (the one docs/architecture.md
    times adding). Not a min-norm rule, so only the shape contract and untied descent apply."""

    def gradients(self, problem, params, batch, candidates):
        grads = mm.linalg.candidate_gradients(problem, params, batch, candidates.deltas)
        return mm.extend.GramVectors(
            grads, [candidates.m], torch.ones(candidates.m, dtype=torch.bool)
        )

    def weigh(self, gram_matrix, sizes):
        w = torch.full((gram_matrix.shape[0],), 1.0 / gram_matrix.shape[0], dtype=torch.float64)
        return mm.extend.MinNormResult(
            weights=w,
            sq_norm=w @ gram_matrix @ w,
            iterations=torch.tensor(0),
            kkt=mm.linalg.kkt_residual(w, gram_matrix),
            method="mean",
        )


# The registered rules plus the test-only one, as a user's registry would hold them.
UNDER_TEST = mm.extend.Registry("rule")
for _name in RULE_NAMES:
    UNDER_TEST.add(_name, mm.extend.RULES.get(_name))
UNDER_TEST.add("mean-gradient", MeanGradient)


def _finite_only(name):
    return getattr(UNDER_TEST.get(name), "finite_only", False)


def _untied(name):
    """Known problems whose maximizer is unique (per example): every rule must descend there.
    Rules for finite maxima (``finite_only``) get one-example finite max problems instead."""
    if _finite_only(name):
        return [
            finite_max(a=((1.0, 2.0),), c=(((1.0,), (-1.0,)),), top=((1.0, 0.5),), theta=(0.3,)),
            finite_max(
                a=((1.0, 1.0, 3.0),),
                c=(((1.0, 0.0), (0.0, 1.0), (1.0, 1.0)),),
                top=((0.2, 0.9, 0.1),),
                theta=(0.0, 0.0),
            ),
            finite_max(a=((2.0,),), c=(((0.5,),),), top=((1.0,),), theta=(-1.0,)),
        ]
    return [
        counterexample(x=(1.0, 0.5)),
        max_of_pieces(a=((1.0, 2.0),), c=(((1.0,), (-1.0,)),), gaps=((0.0, 0.5),), theta=(0.3,)),
        linear_model(w=(1.0, -0.5), x=((0.5, -0.5), (0.2, 0.1)), y=(1.0, -1.0), norm="inf"),
    ]


def _tied(name=None):
    """Known problems with tied maximizers (several candidates matter)."""
    if name is not None and _finite_only(name):
        return [
            finite_max(a=((1.0, 1.0),), c=(((1.0,), (-1.0,)),), top=((1.0, 1.0),), theta=(0.0,)),
            finite_max(
                a=((1.0, 2.0, 1.0),),
                c=(((1.0, 0.0), (-1.0, 0.5), (0.0, -1.0)),),
                top=((0.7, 0.7, 0.7),),
                theta=(0.0, 0.0),
            ),
        ]
    return [
        counterexample(),
        max_of_pieces(
            a=((1.0, 1.0), (2.0, 1.0)),
            c=(((1.0,), (-1.0,)), ((0.5,), (-2.0,))),
            gaps=((0.0, 0.0), (0.0, 0.0)),
            theta=(0.0,),
        ),
    ]


@pytest.mark.parametrize("name", UNDER_TEST.names())
@pytest.mark.parametrize("case", range(3))
def test_descends_where_the_maximizer_is_unique(name, case):
    assert_rule_descends(UNDER_TEST.build(name), _untied(name)[case])


@pytest.mark.parametrize("name", UNDER_TEST.names())
@pytest.mark.parametrize("case", range(2))
def test_direction_contract(name, case):
    kp = _tied(name)[case]
    rule = UNDER_TEST.build(name)
    cands = kp.candidates()
    d = rule(kp.problem, kp.params, kp.batch, cands)
    params = kp.params
    assert set(d.vector) == set(params)
    for k, v in d.vector.items():
        assert v.shape == params[k].shape and bool(torch.isfinite(v).all()), k
    w = d.weights
    assert w.dtype == torch.float64 and w.shape in [(cands.m,), (cands.batch_size, cands.m)]
    assert bool((w >= 0).all())
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1], dtype=torch.float64))
    # d = Σ weights · gradients: batch-mean candidate gradients for [m] weights, per-example
    # gradients for [B, m] weights.
    if w.ndim == 1:
        grads = mm.linalg.candidate_gradients(kp.problem, params, kp.batch, cands.deltas)
        expected = mm.linalg.combine(grads, w)
    else:
        grads = mm.linalg.per_example_gradients(kp.problem, params, kp.batch, cands.deltas)
        expected = mm.linalg.combine(grads, w.T.reshape(-1), lead=2)
    for k in params:
        torch.testing.assert_close(d.vector[k], expected[k], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(d.norm, mm.linalg.flat_norm(d.vector))
    assert d.certificate is None or bool(torch.isfinite(d.certificate))
    assert d.rule == repr(rule) and repr(d).startswith("Direction(")


def test_mean_gradient_is_not_a_min_norm_rule():
    """The checks below can fail: the test-only mean rule's weights are not KKT-optimal on a
    problem whose tied gradients have different lengths."""
    kp = _tied()[1]
    d = MeanGradient()(kp.problem, kp.params, kp.batch, kp.candidates())
    with pytest.raises(AssertionError, match="not optimal"):
        assert_min_norm_optimal(d.weights, d.extras["gram"], tol=1e-9)


@pytest.mark.parametrize("name", RULE_NAMES)
@pytest.mark.parametrize("case", range(2))
def test_gram_rules_certify_descent_on_ties(name, case):
    rule = mm.extend.RULES.build(name)
    if not isinstance(rule, mm.extend.GramRule):
        pytest.skip(f"{name} is not a Gram rule: no certificate is promised")
    kp = _tied()[case]
    d = assert_rule_descends(rule, kp)
    k = d.extras["gram"]
    w = d.weights.reshape(-1)
    blocks = None if d.weights.ndim == 1 else [d.weights.shape[1]] * d.weights.shape[0]
    assert_min_norm_optimal(w, k, tol=1e-9, block_sizes=blocks)
    assert d.certificate is not None
    assert float(d.certificate) <= -(float(d.norm) ** 2) + 1e-9


def test_registry_names_and_aliases():
    assert RULE_NAMES == ["danskin", "maxloss", "ddi", "ddi-example", "group-dro"]
    assert isinstance(mm.extend.RULES.build("pgd"), mm.Danskin)
    assert repr(mm.extend.RULES.build("ddi-example")) == "DDi(per_example=True)"
    with pytest.raises(ValueError, match=r"unknown rule 'sgd'.*danskin"):
        mm.extend.RULES.build("sgd")
