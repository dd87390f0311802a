"""Rules on the paper's problems: counterexample numbers, certificates on every toy."""

import math

import pytest
import torch

import minimax as mm
from minimax.testing.problems import bilinear, counterexample
from minimax.toys import counterexample_phi

ETAS = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0]


def _direction(toy, inner, rule):
    d, cands = mm.descent_direction(toy.problem, None, toy.batch, inner, rule)
    return d, cands


# ------------------------------------------------------------------------------------------------
# The counterexample, through the public API with PGD restarts
# ------------------------------------------------------------------------------------------------


def test_pgd_restarts_find_both_maximizers():
    toy = counterexample()
    cands = mm.PGD(10, 0.1, restarts=10, seed=0)(toy.problem, toy.params, toy.batch)
    ys = set(cands.deltas.flatten().tolist())
    assert ys == {0.0, 1.0}
    torch.testing.assert_close(cands.values, torch.full_like(cands.values, 2.0))


@pytest.mark.parametrize("which", [0.0, 1.0])
def test_single_gradient_ascends_for_every_step(which):
    """Along the negative gradient at either maximizer, φ = 2 + 8η² > 2 for every η > 0."""
    toy = counterexample()
    cands = mm.PGD(10, 0.1, restarts=10, seed=0)(toy.problem, toy.params, toy.batch)
    i = int((cands.deltas[:, 0, 0] == which).nonzero()[0])
    single = mm.extend.Candidates(cands.deltas[i : i + 1], cands.values[i : i + 1])
    d = mm.Danskin()(toy.problem, toy.params, toy.batch, single)
    x = toy.params["x"].detach()
    for eta in ETAS:
        phi = counterexample_phi(x - eta * d.vector["x"])
        assert float(phi) == pytest.approx(2 + 8 * eta**2, rel=1e-12)
        assert float(phi) > 2


def test_ddi_descends_with_exact_numbers():
    toy = counterexample()
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=10, seed=0), mm.DDi())
    torch.testing.assert_close(d.vector["x"], torch.tensor([2.0, 0.0], dtype=torch.float64))
    assert float(d.norm) == pytest.approx(2.0, rel=1e-12)
    # the weights on the y = 0 and y = 1 candidates each sum to ½
    assert float(d.weights.sum()) == pytest.approx(1.0, abs=1e-12)
    x = toy.params["x"].detach()
    for eta in ETAS:
        phi = counterexample_phi(x - eta * d.vector["x"])
        assert float(phi) == pytest.approx((1 - 2 * eta) ** 2 + 1, rel=1e-12)
    assert float(d.certificate) <= -(float(d.norm) ** 2) + 1e-9


def test_ddi_weights_split_half_half():
    toy = counterexample()
    cands = mm.PGD(10, 0.1, restarts=10, seed=0)(toy.problem, toy.params, toy.batch)
    d = mm.DDi()(toy.problem, toy.params, toy.batch, cands)
    ys = cands.deltas[:, 0, 0]
    assert float(d.weights[ys == 0].sum()) == pytest.approx(0.5, abs=1e-10)
    assert float(d.weights[ys == 1].sum()) == pytest.approx(0.5, abs=1e-10)


def test_danskin_certificate_nonnegative_on_counterexample():
    toy = counterexample()
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=10, seed=0), mm.Danskin(certify=True))
    assert d.certificate is not None and float(d.certificate) >= 0


def test_optimizer_step_follows_the_rules():
    """One MinMaxOptimizer step with SGD(lr=η): Danskin goes up to 2 + 8η², DDi down."""
    eta = 0.1
    for rule, expected in [(mm.DDi(), (1 - 2 * eta) ** 2 + 1), (mm.MaxLoss(), 2 + 8 * eta**2)]:
        toy = counterexample()
        opt = mm.MinMaxOptimizer(
            toy.problem,
            torch.optim.SGD(toy.params.values(), lr=eta),
            mm.PGD(10, 0.1, restarts=10, seed=0),
            rule,
            remeasure=True,
        )
        report = opt.step(toy.batch)
        assert float(toy.robust_loss()) == pytest.approx(expected, rel=1e-12)
        assert report.robust_loss == pytest.approx(2.0)
        assert report.robust_loss_after == pytest.approx(expected, rel=1e-9)
        assert report.went_up is (expected > 2)


# ------------------------------------------------------------------------------------------------
# Certificates on every toy problem
# ------------------------------------------------------------------------------------------------


def _toys(elu_network, max_of_quadratics):
    return [
        ("counterexample", counterexample(), mm.PGD(10, 0.1, restarts=10, seed=1)),
        ("counterexample-off", counterexample((0.3, -0.4)), mm.PGD(10, 0.1, restarts=6, seed=2)),
        ("bilinear", bilinear(0.0), mm.Grid(101, 5)),
        ("bilinear-off", bilinear(0.7), mm.PGD(5, 0.5, restarts=4, seed=3)),
        ("quadratics", max_of_quadratics(4, 3, seed=1).known, mm.Grid(61, 4)),
        ("elu", elu_network(n=20), mm.PGD(10, 0.25, restarts=4, seed=4)),
    ]


@pytest.mark.parametrize("per_example", [False, True])
@pytest.mark.parametrize("case", range(6))
def test_ddi_certificate_bounds_descent(case, per_example, elu_network, max_of_quadratics):
    name, toy, inner = _toys(elu_network, max_of_quadratics)[case]
    d, cands = _direction(toy, inner, mm.DDi(per_example=per_example))
    n2 = float(d.norm) ** 2
    # ‖d‖ is the norm of the returned vector, rounded in its dtype (float32 for the ELU network;
    # K and d are then two float32 computations when the layerwise Gramian forms them)
    rounding = 1e-8 if next(iter(d.vector.values())).dtype == torch.float64 else 1e-6
    assert float(d.certificate) <= -n2 + rounding * max(1.0, n2), name
    assert d.kkt is not None and float(d.kkt) < 1e-8
    # recompute the certificate from the returned vector and fresh gradients, independently of
    # the Gram matrix and weights the rule used
    params = toy.problem.parameters()
    norm2 = sum(float((v.double() ** 2).sum()) for v in d.vector.values())
    assert norm2 == pytest.approx(n2, rel=1e-6, abs=1e-12), name
    if per_example:
        g = mm.linalg.per_example_gradients(toy.problem, params, toy.batch, cands.deltas)
        slopes = {k: v.double() for k, v in g.items()}
        dots = sum(
            (slopes[k] * (-d.vector[k].double())).reshape(cands.m, cands.batch_size, -1).sum(-1)
            for k in slopes
        )
        cert = float(dots.max(dim=0).values.sum())
    else:
        g = mm.linalg.candidate_gradients(toy.problem, params, toy.batch, cands.deltas)
        dots = sum(
            (g[k].double() * (-d.vector[k].double())).reshape(cands.m, -1).sum(-1) for k in g
        )
        cert = float(dots.max())
    assert cert == pytest.approx(float(d.certificate), rel=1e-5, abs=1e-9), name
    assert cert <= -n2 + 1e-6 * max(1.0, n2), name


def test_bilinear_stationary_point_has_zero_direction():
    toy = bilinear(0.0)
    for inner in (mm.Grid(101, 4), mm.PGD(3, 0.1, restarts=8, seed=0)):
        d, _ = _direction(toy, inner, mm.DDi())
        assert float(d.norm) < 1e-12
        d2, _ = _direction(toy, inner, mm.DDi(per_example=True))
        assert float(d2.norm) < 1e-12


def test_max_of_quadratics_ddi_matches_exact_danskin_set(max_of_quadratics):
    pieces = max_of_quadratics(3, 2, seed=5)
    d, _ = _direction(pieces.known, mm.Grid(201, 3), mm.DDi())
    grads = pieces.gradients  # [k, n], all tied
    exact = mm.min_norm_point(grads)[0]
    torch.testing.assert_close(d.vector["theta"], exact, atol=1e-9, rtol=1e-9)


def test_tolerance_drops_non_maximizers(max_of_quadratics):
    """Candidates below the best by more than τ get weight 0."""
    pieces = max_of_quadratics(3, 2, tied=2, gap=0.5, seed=2)
    toy = pieces.known
    nodes = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64).reshape(3, 1, 1)
    values = mm.extend.engine_of(toy.problem).values(toy.params, nodes, toy.batch).detach()
    cands = mm.extend.Candidates(nodes, values)
    all_ = mm.DDi()(toy.problem, toy.params, toy.batch, cands)
    tied = mm.DDi(tolerance=1e-6)(toy.problem, toy.params, toy.batch, cands)
    low = cands.values[:, 0] < cands.values.max() - 1e-6
    assert bool(low.any())
    assert float(tied.weights[low].abs().sum()) == 0.0
    grads = pieces.gradients[:2]
    torch.testing.assert_close(
        tied.vector["theta"], mm.min_norm_point(grads)[0], atol=1e-9, rtol=1e-9
    )
    assert float(all_.norm) <= float(tied.norm) + 1e-12  # a bigger hull has a smaller min norm


def test_normalize_returns_unit_vector():
    toy = counterexample()
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=10, seed=0), mm.DDi(normalize=True))
    torch.testing.assert_close(d.vector["x"], torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert float(d.norm) == pytest.approx(2.0)
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=1, seed=0), mm.Danskin(normalize=True))
    assert float(sum((v**2).sum() for v in d.vector.values())) == pytest.approx(1.0)


def test_normalize_leaves_a_direction_at_the_rounding_level_alone():
    """A d whose norm is at the rounding level of its gradients is numerically 0 (a stationary
    point): normalize=True must not turn that noise into a unit step."""
    g = torch.tensor([[0.0, 2.0], [1e-16, -2.0]], dtype=torch.float64)  # tied, opposite

    def fn(params, delta, batch):  # g_i = ∇θ ⟨θ, g_i⟩ at the vertex e_i of the simplex
        return (delta @ g @ params["theta"]).reshape(1)

    problem = mm.FunctionProblem(
        fn, {"theta": torch.zeros(2, dtype=torch.float64)}, mm.Simplex(2), event_shape=(2,)
    )
    cands = mm.Enumerate()(problem, problem.parameters(), None)
    d = mm.DDi(normalize=True)(problem, problem.parameters(), None, cands)
    assert float(mm.linalg.flat_norm(d.vector)) < 1e-12 and float(d.norm) < 1e-12
    far = torch.tensor([[0.0, 2.0], [1.0, -2.0]], dtype=torch.float64)  # a real direction
    g.copy_(far)
    d = mm.DDi(normalize=True)(problem, problem.parameters(), None, cands)
    assert float(mm.linalg.flat_norm(d.vector)) == pytest.approx(1.0)


def test_reprs_are_readable():
    assert repr(mm.DDi(per_example=True, tolerance=0.1)) == "DDi(per_example=True, tolerance=0.1)"
    assert repr(mm.Danskin()) == "Danskin(certify=False)"
    assert "PGD(steps=10" in repr(mm.PGD(10, 0.1, restarts=4))
    assert math.isfinite(float(counterexample().robust_loss()))
