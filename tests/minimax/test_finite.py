"""Finite maxima: the simplex set, exact enumeration, worst-group problems, Group DRO, and every
rule's certificate against the exact oracle on finite max families with exact and rounding ties.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import minimax as mm
from minimax.sets.simplex import project_simplex
from minimax.testing import (
    TIES,
    assert_descent_direction,
    conflicting_pieces,
    danskin_set,
    finite_max,
    finite_max_problems,
    shift_ulps,
)

F64 = torch.float64


def _bisection_projection(v: np.ndarray) -> np.ndarray:
    """Projection onto the simplex by bisection on τ in Σ max(v − τ, 0) = 1 (no sorting)."""
    lo, hi = float(v.min()) - 1.0, float(v.max())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(v - mid, 0).sum() > 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(v - 0.5 * (lo + hi), 0)


vectors = st.integers(1, 12).flatmap(
    lambda k: st.lists(
        st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=k, max_size=k
    )
)


# ------------------------------------------------------------------------------------------------
# Simplex
# ------------------------------------------------------------------------------------------------


@given(v=vectors)
def test_simplex_projection_matches_bisection(v):
    z = torch.tensor([v], dtype=F64)
    p = mm.Simplex(len(v)).project(z)[0].numpy()
    ref = _bisection_projection(np.array(v))
    np.testing.assert_allclose(p, ref, atol=1e-9 * max(1.0, np.abs(v).max()), rtol=0)
    assert p.min() >= 0 and abs(p.sum() - 1) <= 1e-12
    again = project_simplex(torch.tensor(p)).numpy()  # idempotent, up to a few ulps
    np.testing.assert_allclose(again, p, atol=8 * np.finfo(np.float64).eps, rtol=0)


def test_simplex_projection_matches_cvxpy_qp():
    cp = pytest.importorskip("cvxpy")
    gen = torch.Generator().manual_seed(0)
    for k in (2, 3, 5):
        v = (3 * torch.randn(4, k, generator=gen, dtype=F64)).numpy()
        ours = mm.Simplex(k).project(torch.tensor(v)).numpy()
        for row, mine in zip(v, ours):
            w = cp.Variable(k)
            cp.Problem(cp.Minimize(cp.sum_squares(w - row)), [w >= 0, cp.sum(w) == 1]).solve()
            np.testing.assert_allclose(mine, w.value, atol=1e-6)


def test_simplex_projection_huge_and_layout():
    s = mm.Simplex(3)
    out = s.project(torch.tensor([[1e308, -1e308, 0.0], [1e200, 1e200, -5.0]], dtype=F64))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0]], dtype=F64))
    lead = torch.randn(4, 2, 3, dtype=F64)
    flat = project_simplex(lead.reshape(8, 3)).reshape(4, 2, 3)
    torch.testing.assert_close(s.project(lead), flat)
    assert s.contains(s.project(lead)).shape == (4, 2)


def test_simplex_random_is_uniform_and_seeded():
    k, n = 4, 4000
    s = mm.Simplex(k)
    draw = s.random((n, k), generator=torch.Generator().manual_seed(1), dtype=F64)
    again = s.random((n, k), generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.equal(draw, again)
    assert bool(s.contains(draw).all())
    # each coordinate of a uniform point of Δ_k is Beta(1, k − 1)
    for j in range(k):
        assert stats.kstest(draw[:, j].numpy(), stats.beta(1, k - 1).cdf).pvalue > 1e-3


def test_simplex_ascent_step_gain_and_pgd_finds_best_vertex():
    s = mm.Simplex(5)
    gen = torch.Generator().manual_seed(2)
    delta = s.random((3, 5), generator=gen, dtype=F64)
    grad = torch.randn(3, 5, generator=gen, dtype=F64)
    step = s.ascent_step(delta, grad, 0.1)
    torch.testing.assert_close(((step - delta) * grad).sum(-1), 0.1 * s.dual_norm(grad))
    torch.testing.assert_close(step.sum(-1), delta.sum(-1))  # stays in the affine hull
    torch.testing.assert_close(s.vertices(dtype=F64), torch.eye(5, dtype=F64))
    for scale in (1e-200, 1e200):  # no underflow or overflow in the norms
        tiny = s.ascent_step(delta, grad * scale, 0.1)
        torch.testing.assert_close(tiny, step)
        torch.testing.assert_close(s.dual_norm(grad * scale) / scale, s.dual_norm(grad))
    w = torch.tensor([[0.3, -1.0, 2.0, 0.5, 0.0]], dtype=F64)
    problem = mm.FunctionProblem(
        lambda p, d, b: (d * (w + p["t"])).sum(-1),
        {"t": torch.zeros(5, dtype=F64)},
        s,
        event_shape=(5,),
    )
    cands = mm.PGD(steps=200, step_size=0.05, restarts=2)(
        problem, problem.parameters(), None, generator=torch.Generator().manual_seed(0)
    )
    assert abs(float(cands.best_values()[0]) - 2.0) < 1e-9


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: mm.Simplex(0), ValueError),
        (lambda: mm.Simplex(2.5), TypeError),  # type: ignore[arg-type]
        (lambda: mm.Simplex(3).project(torch.zeros(2, 4)), ValueError),
        (lambda: mm.Simplex(3).project(torch.zeros(2, 3), event_ndim=2), ValueError),
        (lambda: mm.Simplex(3).random((3,)), ValueError),
        (lambda: mm.Simplex(3).ascent_step(torch.zeros(1, 3), torch.zeros(2, 3), 0.1), ValueError),
    ],
)
def test_simplex_bad_input(call, error):
    with pytest.raises(error):
        call()


# ------------------------------------------------------------------------------------------------
# Enumerate
# ------------------------------------------------------------------------------------------------


@given(kp=finite_max_problems(ties="rounding", max_batch=3))
def test_enumerate_returns_every_piece_with_its_exact_value(kp):
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    k, b = kp.info["k"], kp.info["B"]
    assert cands.m == k
    torch.testing.assert_close(cands.deltas, torch.eye(k, dtype=F64)[:, None].expand(k, b, k))
    top = kp.batch[2]
    assert torch.equal(cands.values, top.T)  # bit-exact: q_bj(θ₀) = top_bj
    assert torch.equal(cands.best_values(), kp.per_example_loss())


def test_enumerate_refuses_sets_without_vertices():
    kp = mm.testing.bilinear(0.0)
    with pytest.raises(TypeError, match="vertices"):
        mm.Enumerate()(kp.problem, kp.params, kp.batch)


class _PartialPieces(mm.FunctionProblem):
    """Two examples over Δ_3; example 1 lacks piece 0 (its value there is 0, its gradient 0)."""

    def present(self, batch):
        return torch.tensor([[True, True, True], [False, True, True]])


def test_enumerate_pads_absent_pieces_with_the_best_present_one():
    w = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, -4.0]], dtype=F64)
    problem = _PartialPieces(
        lambda p, d, b: (d * w * p["s"]).sum(-1),
        {"s": torch.ones(1, dtype=F64)},
        mm.Simplex(3),
        event_shape=(3,),
        batch_size=lambda b: 2,
    )
    cands = mm.Enumerate()(problem, problem.parameters(), None)
    assert cands.m == 3
    picked = cands.deltas.argmax(-1)  # [m, B] piece indices
    assert picked[:, 0].tolist() == [0, 1, 2]
    assert picked[:, 1].tolist() == [1, 2, 1]  # present pieces, then the best present one
    torch.testing.assert_close(cands.values[:, 1], torch.tensor([-1.0, -4.0, -1.0], dtype=F64))


# ------------------------------------------------------------------------------------------------
# WorstGroupProblem
# ------------------------------------------------------------------------------------------------


def _group_setup(groups: list[int], num_groups: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64))
    x = torch.randn(len(groups), 3, generator=gen, dtype=F64)
    y = torch.randint(0, 2, (len(groups),), generator=gen)
    g = torch.tensor(groups)
    return model, mm.WorstGroupProblem.from_module(model, num_groups), (x, y, g)


def _by_hand(model, batch, group):
    x, y, g = batch
    sel = g == group
    return torch.nn.functional.cross_entropy(model(x[sel]), y[sel])


def test_worst_group_values_are_group_means_and_absent_groups_never_enter():
    model, problem, batch = _group_setup([0, 0, 1, 3, 3, 3, 1])  # group 2 is absent
    losses = problem.group_losses(problem.parameters(), batch)
    for grp in (0, 1, 3):
        torch.testing.assert_close(losses[grp], _by_hand(model, batch, grp).detach())
    assert math.isnan(float(losses[2]))
    assert problem.present(batch).tolist() == [[True, True, False, True]]
    cands = mm.Enumerate()(problem, problem.parameters(), batch)
    assert cands.deltas[:, 0].argmax(-1).tolist() == [0, 1, 3]  # only present groups
    torch.testing.assert_close(cands.values[:, 0], losses[[0, 1, 3]])
    # the absent group's piece copies the lowest present loss: the max over Δ_k is unchanged
    pieces = problem.pieces(problem.parameters(), batch).detach()
    assert float(pieces[2]) == float(losses[[0, 1, 3]].min())
    direction = mm.DDi()(problem, problem.parameters(), batch, cands)
    k = direction.extras["gram"]
    assert float(torch.diagonal(k).min()) > 0  # no zero gradient in the hull
    assert float(direction.norm) > 1e-3


def test_worst_group_gradients_and_erm_weights():
    model, problem, batch = _group_setup([0, 1, 1, 2, 2, 2, 3, 0], seed=3)
    cands = mm.Enumerate()(problem, problem.parameters(), batch)
    worst = int(cands.values[:, 0].argmax())
    d = mm.Danskin()(problem, problem.parameters(), batch, cands)
    model.zero_grad()
    _by_hand(model, batch, worst).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(d.vector[name], p.grad)
    erm = mm.engine.gradients.batch_gradient(
        problem, problem.parameters(), batch, problem.proportions(batch)
    )
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(erm[name], p.grad)


def test_worst_group_max_over_the_simplex_is_the_worst_present_group():
    _, problem, batch = _group_setup([0, 0, 1, 1, 3], seed=5)  # group 2 absent
    cands = mm.PGD(steps=100, step_size=0.1, restarts=3)(
        problem, problem.parameters(), batch, generator=torch.Generator().manual_seed(0)
    )
    worst = problem.group_losses(problem.parameters(), batch).nan_to_num(-math.inf).max()
    torch.testing.assert_close(cands.best_values()[0], worst)


@pytest.mark.parametrize(
    "groups, error",
    [([0, 4], ValueError), ([-1, 0], ValueError), ([0.0, 1.0], TypeError)],
)
def test_worst_group_bad_labels(groups, error):
    model = torch.nn.Linear(3, 2).double()
    problem = mm.WorstGroupProblem.from_module(model, 4)
    batch = (torch.zeros(2, 3, dtype=F64), torch.zeros(2, dtype=torch.long), torch.tensor(groups))
    with pytest.raises(error, match="group"):
        problem.delta_shape(batch)


# ------------------------------------------------------------------------------------------------
# Group DRO
# ------------------------------------------------------------------------------------------------


def test_group_dro_update_matches_a_hand_computation():
    model, problem, batch = _group_setup([0, 0, 1, 3, 3], seed=7)  # group 2 absent
    rule = mm.GroupDRO(step_size=0.5)
    cands = mm.Enumerate()(problem, problem.parameters(), batch)
    direction = rule(problem, problem.parameters(), batch, cands)
    losses = (
        [float(_by_hand(model, batch, g).detach()) for g in (0, 1)]
        + [0.0]
        + [float(_by_hand(model, batch, 3).detach())]
    )
    expected = np.exp(0.5 * np.array(losses)) * 0.25
    expected /= expected.sum()
    np.testing.assert_allclose(direction.extras["q"].numpy(), expected, rtol=1e-12)
    model.zero_grad()
    sum(expected[g] * _by_hand(model, batch, g) for g in (0, 1, 3)).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(direction.vector[name], p.grad)
    # a second step starts from the saved weights
    state = rule.state_dict()
    fresh = mm.GroupDRO(step_size=0.5)
    fresh.load_state_dict(state)
    q2 = fresh(problem, problem.parameters(), batch, cands).extras["q"]
    q2_expected = expected * np.exp(0.5 * np.array(losses))
    np.testing.assert_allclose(q2.numpy(), q2_expected / q2_expected.sum(), rtol=1e-12)
    with pytest.raises(ValueError, match="step_size"):
        mm.GroupDRO(0.1).load_state_dict(state)
    with pytest.raises(ValueError):
        mm.GroupDRO(-1.0)


# ------------------------------------------------------------------------------------------------
# certificates against the exact oracle
# ------------------------------------------------------------------------------------------------

TOL = 1e-9


def _exact_derivative(kp, direction) -> float:
    """R'(θ; −d) over the oracle's active sets (Danskin's formula)."""
    dset = danskin_set(kp)
    return float(dset.directional_derivative({k: -v for k, v in direction.vector.items()}))


@pytest.mark.parametrize("ties", TIES)
@given(data=st.data())
def test_certificates_never_overpromise(ties, data):
    kp = data.draw(finite_max_problems(ties=ties), label="problem")
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    rules = [
        mm.Danskin(certify=True),
        mm.MaxLoss(certify=True),
        mm.GroupDRO(certify=True),
        mm.DDi(tolerance=TOL),
    ]
    for rule in rules:
        d = rule(kp.problem, kp.params, kp.batch, cands)
        assert d.certificate is not None
        scale = max(1.0, float(d.norm) ** 2)
        assert _exact_derivative(kp, d) <= float(d.certificate) + 1e-9 * scale, rule


@pytest.mark.parametrize("ties", TIES)
@given(data=st.data())
def test_ddi_with_tolerance_is_the_exact_steepest_descent(ties, data):
    kp = data.draw(finite_max_problems(ties=ties, max_batch=3), label="problem")
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    per_example = kp.info["B"] > 1
    d = mm.DDi(tolerance=TOL, per_example=per_example)(kp.problem, kp.params, kp.batch, cands)
    gamma, gamma_norm, _ = danskin_set(kp).min_norm()
    scale = max(1.0, float(gamma_norm))
    torch.testing.assert_close(d.vector["theta"], gamma["theta"], atol=1e-7 * scale, rtol=0)
    torch.testing.assert_close(d.certificate, -(d.norm**2), atol=1e-9 * scale**2, rtol=0)
    if float(gamma_norm) > 1e-6:
        assert_descent_direction(kp, None, d)
        assert _exact_derivative(kp, d) == pytest.approx(-(float(gamma_norm) ** 2), abs=1e-8)


@pytest.mark.parametrize("ties", ["exact", "rounding"])
def test_ddi_with_tolerance_descends_where_danskin_does_not(ties):
    kp = conflicting_pieces(ties)
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    danskin = mm.Danskin(certify=True)(kp.problem, kp.params, kp.batch, cands)
    with pytest.raises(AssertionError, match="ascent direction"):
        assert_descent_direction(kp, None, danskin)
    assert _exact_derivative(kp, danskin) == pytest.approx(3.0)  # slope 3/√5 per unit, ‖d‖ = √5
    ddi = mm.DDi(tolerance=TOL)(kp.problem, kp.params, kp.batch, cands)
    check = assert_descent_direction(kp, None, ddi)
    assert check.derivative == pytest.approx(-1.0)  # the steepest slope, −‖γ*‖ = −1
    torch.testing.assert_close(ddi.vector["theta"], torch.tensor([1.0, 0.0], dtype=F64))


def test_rounding_ties_need_a_tolerance_and_inactive_pieces_fake_stationarity():
    kp = conflicting_pieces("rounding")
    assert kp.info["spread_ulps"] == [1] and kp.info["active"] == [[0, 1]]
    cands = mm.Enumerate()(kp.problem, kp.params, kp.batch)
    strict = mm.DDi(tolerance=0.0)(kp.problem, kp.params, kp.batch, cands)
    assert float(strict.certificate) < 0  # claims descent from one piece, 1 ulp above the other
    assert _exact_derivative(kp, strict) > 0  # but the near-tied piece rises
    everything = mm.DDi()(kp.problem, kp.params, kp.batch, cands)  # the inactive piece included
    assert float(everything.norm) < 1e-12 < float(danskin_set(kp).min_norm()[1])


def test_finite_max_builder_and_strategy_ties():
    exact = finite_max(top=[[1.5, 1.5]])
    assert exact.info["spread_ulps"] == [0] and exact.tied()
    rounding = finite_max(top=[[1.5, shift_ulps(1.5, 3)]])
    assert rounding.info["spread_ulps"] == [3] and rounding.tied()
    assert finite_max(top=[[1.5, 1.0]]).info["active"] == [[0]]
    with pytest.raises(ValueError):
        finite_max(a=[[1.0, -1.0]])


def test_worst_group_proportions_give_the_mean_loss_in_the_problems_dtype():
    """proportions are divided in θ's dtype (issue 21: computed in float32 and cast, a float64
    problem missed the plain mean loss by up to 5e-8)."""
    torch.manual_seed(0)
    group = torch.tensor([0, 1, 1, 2, 2, 2, 2])  # shares 1/7, 2/7, 4/7: inexact in binary
    losses = torch.rand(7, dtype=torch.float64) + 0.5
    theta = {"w": torch.ones((), dtype=torch.float64)}
    problem = mm.WorstGroupProblem(lambda p, data: p["w"] * data[0], theta, 3)
    batch = (losses, group)
    prop = problem.proportions(batch)
    assert prop.dtype == torch.float64
    value = mm.extend.engine_of(problem).values(problem.parameters(), prop.unsqueeze(0), batch)
    assert abs(float(value.detach()) - float(losses.mean())) <= 1e-15
