"""The core API on the paper's problems: counterexample numbers, certificates, PGD, BatchNorm."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import minimax as mm
from problems.toy import Bilinear, Counterexample, ELUNetwork, MaxOfQuadratics, counterexample_phi

ETAS = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0]


def _direction(toy, inner, rule):
    d, cands = mm.descent_direction(toy.problem, None, toy.batch, inner, rule)
    return d, cands


# ------------------------------------------------------------------------------------------------
# The counterexample, through the public API with PGD restarts
# ------------------------------------------------------------------------------------------------


def test_pgd_restarts_find_both_maximizers():
    toy = Counterexample()
    cands = mm.PGD(10, 0.1, restarts=10, seed=0)(toy.problem, toy.params(), toy.batch)
    ys = set(cands.deltas.flatten().tolist())
    assert ys == {0.0, 1.0}
    torch.testing.assert_close(cands.values, torch.full_like(cands.values, 2.0))


@pytest.mark.parametrize("which", [0.0, 1.0])
def test_single_gradient_ascends_for_every_step(which):
    """Along the negative gradient at either maximizer, φ = 2 + 8η² > 2 for every η > 0."""
    toy = Counterexample()
    cands = mm.PGD(10, 0.1, restarts=10, seed=0)(toy.problem, toy.params(), toy.batch)
    i = int((cands.deltas[:, 0, 0] == which).nonzero()[0])
    single = mm.Candidates(cands.deltas[i : i + 1], cands.values[i : i + 1])
    d = mm.Danskin()(toy.problem, toy.params(), toy.batch, single)
    x = toy.params()["x"].detach()
    for eta in ETAS:
        phi = counterexample_phi(x - eta * d.vector["x"])
        assert float(phi) == pytest.approx(2 + 8 * eta**2, rel=1e-12)
        assert float(phi) > 2


def test_ddi_descends_with_exact_numbers():
    toy = Counterexample()
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=10, seed=0), mm.DDi())
    torch.testing.assert_close(d.vector["x"], torch.tensor([2.0, 0.0], dtype=torch.float64))
    assert float(d.norm) == pytest.approx(2.0, rel=1e-12)
    # the weights on the y = 0 and y = 1 candidates each sum to ½
    assert float(d.weights.sum()) == pytest.approx(1.0, abs=1e-12)
    x = toy.params()["x"].detach()
    for eta in ETAS:
        phi = counterexample_phi(x - eta * d.vector["x"])
        assert float(phi) == pytest.approx((1 - 2 * eta) ** 2 + 1, rel=1e-12)
    assert float(d.certificate) <= -(float(d.norm) ** 2) + 1e-9


def test_ddi_weights_split_half_half():
    toy = Counterexample()
    cands = mm.PGD(10, 0.1, restarts=10, seed=0)(toy.problem, toy.params(), toy.batch)
    d = mm.DDi()(toy.problem, toy.params(), toy.batch, cands)
    ys = cands.deltas[:, 0, 0]
    assert float(d.weights[ys == 0].sum()) == pytest.approx(0.5, abs=1e-10)
    assert float(d.weights[ys == 1].sum()) == pytest.approx(0.5, abs=1e-10)


def test_danskin_certificate_nonnegative_on_counterexample():
    toy = Counterexample()
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=10, seed=0), mm.Danskin(certify=True))
    assert d.certificate is not None and float(d.certificate) >= 0


def test_optimizer_step_follows_the_rules():
    """One MinMaxOptimizer step with SGD(lr=η): Danskin goes up to 2 + 8η², DDi down."""
    eta = 0.1
    for rule, expected in [(mm.DDi(), (1 - 2 * eta) ** 2 + 1), (mm.MaxLoss(), 2 + 8 * eta**2)]:
        toy = Counterexample()
        opt = mm.MinMaxOptimizer(
            toy.problem,
            torch.optim.SGD(toy.params().values(), lr=eta),
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


def _toys():
    return [
        ("counterexample", Counterexample(), mm.PGD(10, 0.1, restarts=10, seed=1)),
        ("counterexample-off", Counterexample((0.3, -0.4)), mm.PGD(10, 0.1, restarts=6, seed=2)),
        ("bilinear", Bilinear(0.0), mm.Grid(101, 5)),
        ("bilinear-off", Bilinear(0.7), mm.PGD(5, 0.5, restarts=4, seed=3)),
        ("quadratics", MaxOfQuadratics(4, 3, seed=1), mm.Grid(61, 4)),
        ("elu", ELUNetwork(n=20), mm.PGD(10, 0.25, restarts=4, seed=4)),
    ]


@pytest.mark.parametrize("per_example", [False, True])
@pytest.mark.parametrize("case", range(6))
def test_ddi_certificate_bounds_descent(case, per_example):
    name, toy, inner = _toys()[case]
    d, cands = _direction(toy, inner, mm.DDi(per_example=per_example))
    n2 = float(d.norm) ** 2
    assert float(d.certificate) <= -n2 + 1e-8 * max(1.0, n2), name
    assert d.kkt is not None and float(d.kkt) < 1e-8
    # recompute the certificate from the returned vector and fresh gradients, independently of
    # the Gram matrix and weights the rule used
    params = toy.params()
    norm2 = sum(float((v.double() ** 2).sum()) for v in d.vector.values())
    assert norm2 == pytest.approx(n2, rel=1e-6, abs=1e-12), name
    if per_example:
        g = mm.per_example_gradients(toy.problem, params, toy.batch, cands.deltas)
        slopes = {k: v.double() for k, v in g.items()}
        dots = sum((slopes[k] * (-d.vector[k].double())).reshape(cands.m, cands.batch_size, -1)
                   .sum(-1) for k in slopes)
        cert = float(dots.max(dim=0).values.sum())
    else:
        g = mm.candidate_gradients(toy.problem, params, toy.batch, cands.deltas)
        dots = sum((g[k].double() * (-d.vector[k].double())).reshape(cands.m, -1).sum(-1)
                   for k in g)
        cert = float(dots.max())
    assert cert == pytest.approx(float(d.certificate), rel=1e-5, abs=1e-9), name
    assert cert <= -n2 + 1e-6 * max(1.0, n2), name


def test_bilinear_stationary_point_has_zero_direction():
    toy = Bilinear(0.0)
    for inner in (mm.Grid(101, 4), mm.PGD(3, 0.1, restarts=8, seed=0)):
        d, _ = _direction(toy, inner, mm.DDi())
        assert float(d.norm) < 1e-12
        d2, _ = _direction(toy, inner, mm.DDi(per_example=True))
        assert float(d2.norm) < 1e-12


def test_max_of_quadratics_ddi_matches_exact_danskin_set():
    toy = MaxOfQuadratics(3, 2, seed=5)
    d, _ = _direction(toy, mm.Grid(201, 3), mm.DDi())
    grads = toy.pieces.gradients(toy.theta0)  # [k, n], all tied
    exact = mm.min_norm_point(grads)[0]
    torch.testing.assert_close(d.vector["theta"], exact, atol=1e-9, rtol=1e-9)


def test_tolerance_drops_non_maximizers():
    """Candidates below the best by more than τ get weight 0."""
    toy = MaxOfQuadratics(3, 2, tied=2, gap=0.5, seed=2)
    nodes = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64).reshape(3, 1, 1)
    values = toy.problem.values(toy.params(), nodes, toy.batch).detach()
    cands = mm.Candidates(nodes, values)
    all_ = mm.DDi()(toy.problem, toy.params(), toy.batch, cands)
    tied = mm.DDi(tolerance=1e-6)(toy.problem, toy.params(), toy.batch, cands)
    low = cands.values[:, 0] < cands.values.max() - 1e-6
    assert bool(low.any())
    assert float(tied.weights[low].abs().sum()) == 0.0
    grads = toy.pieces.gradients(toy.theta0)[:2]
    torch.testing.assert_close(
        tied.vector["theta"], mm.min_norm_point(grads)[0], atol=1e-9, rtol=1e-9
    )
    assert float(all_.norm) <= float(tied.norm) + 1e-12  # a bigger hull has a smaller min norm


def test_normalize_returns_unit_vector():
    toy = Counterexample()
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=10, seed=0), mm.DDi(normalize=True))
    torch.testing.assert_close(d.vector["x"], torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert float(d.norm) == pytest.approx(2.0)
    d, _ = _direction(toy, mm.PGD(10, 0.1, restarts=1, seed=0), mm.Danskin(normalize=True))
    assert float(sum((v**2).sum() for v in d.vector.values())) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# PGD
# ------------------------------------------------------------------------------------------------


def _logistic(n=16, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g) > 0.5).to(torch.float64)
    lin = nn.Linear(dim, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1, dim, generator=g, dtype=torch.float64))
    loss = lambda out, t: nn.functional.binary_cross_entropy_with_logits(  # noqa: E731
        out[:, 0], t, reduction="none"
    )
    return lin, loss, (x, y)


@settings(max_examples=10)
@given(st.integers(0, 1000), st.sampled_from([0.05, 0.3, 1.0]))
def test_pgd_reaches_closed_form_linf_maximizer(seed, eps):
    """For logistic loss, the L∞ maximizer is δ* = ε·sign(w)·(1 − 2y)."""
    lin, loss, batch = _logistic(seed=seed)
    problem = mm.ModuleProblem(lin, loss, mm.LinfBall(eps))
    cands = mm.PGD(5, eps / 2, restarts=2, seed=seed)(problem, problem.parameters(), batch)
    _, y = batch
    w = lin.weight.detach()[0]
    exact = eps * torch.sign(w) * (1 - 2 * y).unsqueeze(1)
    torch.testing.assert_close(cands.deltas, exact.expand_as(cands.deltas))
    exact_values = problem.values(problem.parameters(), exact, batch).detach()
    torch.testing.assert_close(cands.best_values(), exact_values)


def test_pgd_batched_and_looped_restarts_agree():
    toy = ELUNetwork(n=12)
    kwargs = dict(steps=7, step_size=0.2, restarts=5, seed=11)
    a = mm.PGD(**kwargs)(toy.problem, toy.params(), toy.batch)
    b = mm.PGD(**kwargs, batched=False)(toy.problem, toy.params(), toy.batch)
    torch.testing.assert_close(a.deltas, b.deltas)
    torch.testing.assert_close(a.values, b.values)
    c2 = mm.PGD(**kwargs, chunk=2)(toy.problem, toy.params(), toy.batch)
    torch.testing.assert_close(a.deltas, c2.deltas)
    torch.testing.assert_close(a.values, c2.values)
    c = mm.PGD(**{**kwargs, "seed": 12})(toy.problem, toy.params(), toy.batch)
    assert not torch.equal(a.deltas, c.deltas)


def test_pgd_best_iterate_is_at_least_last():
    toy = ELUNetwork(n=12)
    last = mm.PGD(6, 0.6, restarts=3, seed=0)(toy.problem, toy.params(), toy.batch)
    best = mm.PGD(6, 0.6, restarts=3, seed=0, select="best")(toy.problem, toy.params(), toy.batch)
    assert bool((best.values >= last.values - 1e-7).all())


def test_fgsm_is_one_signed_step():
    lin, loss, batch = _logistic(seed=3)
    problem = mm.ModuleProblem(lin, loss, mm.LinfBall(0.1))
    cands = mm.FGSM()(problem, problem.parameters(), batch)
    w = lin.weight.detach()[0]
    exact = 0.1 * torch.sign(w) * (1 - 2 * batch[1]).unsqueeze(1)
    torch.testing.assert_close(cands.deltas[0], exact)


def test_pass_counts():
    toy = ELUNetwork(n=8)
    inner = mm.PGD(5, 0.2, restarts=3, seed=0)
    opt = mm.MinMaxOptimizer(
        toy.problem, torch.optim.SGD(toy.params().values(), lr=0.1), inner, mm.DDi()
    )
    r = opt.step(toy.batch)
    assert (r.forward, r.backward) == (3 * (5 + 1) + 3, 3 * 5 + 3)
    opt = mm.MinMaxOptimizer(
        toy.problem,
        torch.optim.SGD(toy.params().values(), lr=0.1),
        mm.PGD(5, 0.2, restarts=1, seed=0),
        mm.Danskin(),
    )
    r = opt.step(toy.batch)
    assert (r.forward, r.backward) == (5 + 1 + 1, 5 + 1)


# ------------------------------------------------------------------------------------------------
# Gradients: vmap against loop, per-example DDi against a brute-force QP
# ------------------------------------------------------------------------------------------------


def test_vmap_and_loop_gradients_agree():
    toy = ELUNetwork(n=10)
    cands = mm.PGD(3, 0.3, restarts=4, seed=0)(toy.problem, toy.params(), toy.batch)
    a = mm.candidate_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
    b = mm.candidate_gradients(toy.problem, toy.params(), toy.batch, cands.deltas, method="loop")
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    a = mm.per_example_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
    b = mm.per_example_gradients(toy.problem, toy.params(), toy.batch, cands.deltas, method="loop")
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # per-example gradients sum to the batch gradient of each candidate
    g = mm.candidate_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
    for k in a:
        torch.testing.assert_close(a[k].sum(1), g[k])


@settings(max_examples=8)
@given(st.integers(0, 10_000), st.integers(2, 4), st.integers(2, 3))
def test_per_example_ddi_equals_brute_force_qp(seed, b, m):
    cp = pytest.importorskip("cvxpy")
    torch.manual_seed(seed)
    toy = ELUNetwork(n=b, seed=seed, dtype=torch.float64)
    cands = mm.PGD(2, 0.4, restarts=m, seed=seed)(toy.problem, toy.params(), toy.batch)
    d = mm.DDi(per_example=True)(toy.problem, toy.params(), toy.batch, cands)
    grads = mm.per_example_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
    flat = torch.cat([v.reshape(m, b, -1) for v in grads.values()], dim=-1)  # [m, B, P]
    G = flat.transpose(0, 1).numpy()  # [B, m, P]
    alpha = cp.Variable((b, m), nonneg=True)
    point = sum(G[j].T @ alpha[j] for j in range(b))
    prob = cp.Problem(cp.Minimize(cp.sum_squares(point)), [cp.sum(alpha, axis=1) == 1])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-12)
    ref = float(prob.value)
    got = float(d.norm) ** 2
    assert got <= ref * (1 + 1e-7) + 1e-14
    assert got >= ref * (1 - 1e-6) - 1e-12


# ------------------------------------------------------------------------------------------------
# BatchNorm: each restart gets its own forward
# ------------------------------------------------------------------------------------------------


class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 6)
        self.bn = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.bn(self.fc1(x))))


def test_batchnorm_per_restart_gradients_equal_separate_forwards():
    torch.manual_seed(0)
    net = _BNNet().double().train()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.3))
    deltas = 0.3 * (2 * torch.rand(4, 8, 3, dtype=torch.float64) - 1)
    before = (net.bn.running_mean.clone(), net.bn.running_var.clone())
    got = mm.candidate_gradients(problem, problem.parameters(), (x, y), deltas)
    values = problem.values(problem.parameters(), deltas, (x, y))
    torch.testing.assert_close(net.bn.running_mean, before[0])  # nothing tracked inside
    for i in range(4):
        ref = _BNNet().double().train()
        ref.load_state_dict(net.state_dict())
        loss = nn.functional.cross_entropy(ref(x + deltas[i]), y)
        ref.zero_grad()
        loss.backward()
        torch.testing.assert_close(values[i].mean(), loss.detach())
        for name, p in ref.named_parameters():
            torch.testing.assert_close(got[name][i], p.grad)
    # the stacked forward would mix statistics across restarts; ours must not
    mixed = nn.functional.cross_entropy(
        net((x + deltas).reshape(32, 3)), y.repeat(4), reduction="none"
    ).reshape(4, 8)
    assert not torch.allclose(mixed, values)


def test_per_example_ddi_refuses_coupled_batchnorm():
    net = _BNNet().train()
    x, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    with pytest.raises(ValueError, match="coupled"):
        mm.descent_direction(problem, None, (x, y), mm.PGD(2, 0.05, restarts=2),
                             mm.DDi(per_example=True))
    ev = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), batchnorm="eval")
    d, _ = mm.descent_direction(ev, None, (x, y), mm.PGD(2, 0.05, restarts=2),
                                mm.DDi(per_example=True))
    assert float(d.certificate) <= -float(d.norm) ** 2 + 1e-8


def test_unseeded_solvers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mm.PGD(1, 0.1, seed=None)
    mm.APGD(1, seed=None)
    torch.testing.assert_close(torch.rand(3), expected)


def test_batchnorm_running_statistics_update_once_per_step():
    torch.manual_seed(0)
    net = _BNNet().train()
    x, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    opt = mm.MinMaxOptimizer(
        problem,
        torch.optim.SGD(problem.parameters().values(), lr=0.1),
        mm.PGD(3, 0.05, restarts=3, seed=0),
        mm.DDi(),
    )
    opt.step((x, y))
    assert int(net.bn.num_batches_tracked) == 1
    assert not torch.allclose(net.bn.running_mean, torch.zeros(6))
    ev = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), batchnorm="eval")
    opt = mm.MinMaxOptimizer(
        ev,
        torch.optim.SGD(ev.parameters().values(), lr=0.1),
        mm.PGD(3, 0.05, restarts=3, seed=0),
        mm.DDi(),
    )
    opt.step((x, y))
    assert int(net.bn.num_batches_tracked) == 2 and net.training


# ------------------------------------------------------------------------------------------------
# MinMaxOptimizer with schedulers and state_dict
# ------------------------------------------------------------------------------------------------


def _train(steps, state=None):
    toy = ELUNetwork(n=16, seed=1)
    sgd = torch.optim.SGD(toy.params().values(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=2, gamma=0.5)
    opt = mm.MinMaxOptimizer(toy.problem, sgd, mm.PGD(3, 0.3, restarts=3, seed=5), mm.DDi())
    if state is not None:
        toy.model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    for _ in range(steps):
        opt.step(toy.batch)
        sched.step()
    return toy, opt, sched


def test_state_dict_resume_is_exact():
    full, _, sched_full = _train(4)
    half, opt, sched = _train(2)
    state = {"model": half.model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}
    resumed, _, sched_resumed = _train(2, state)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert sched_full.get_last_lr() == sched_resumed.get_last_lr() == [0.125]


def test_descent_over_training_on_elu_toy():
    toy = ELUNetwork(n=40)
    opt = mm.MinMaxOptimizer(
        toy.problem,
        torch.optim.SGD(toy.params().values(), lr=0.5),
        mm.PGD(10, 0.25, restarts=4, seed=0),
        mm.DDi(),
    )
    start = float(toy.robust_loss(resolution=41))
    for _ in range(15):
        opt.step(toy.batch)
    assert float(toy.robust_loss(resolution=41)) < start - 0.05


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_bad_inputs_have_clear_errors():
    lin, loss, (x, y) = _logistic()
    problem = mm.ModuleProblem(lin, loss, mm.LinfBall(0.1))
    params = problem.parameters()
    with pytest.raises(ValueError, match="eps must be"):
        mm.LinfBall(-0.1)
    with pytest.raises(ValueError, match="delta has shape"):
        problem.values(params, torch.zeros(2, 16, 4, dtype=torch.float64), (x, y))
    with pytest.raises(ValueError, match="empty"):
        mm.PGD(2, 0.1)(problem, params, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="examples but y"):
        mm.PGD(2, 0.1)(problem, params, (x, y[:3]))
    with pytest.raises(TypeError, match="dtype"):
        mm.PGD(2, 0.1)(problem, params, (x.float(), y))
    with pytest.raises(ValueError, match="model is on"):
        mm.PGD(2, 0.1)(problem, params, (x.to("meta"), y.to("meta")))
    with pytest.raises(ValueError, match="reduction='none'"):
        bad = mm.ModuleProblem(lin, lambda o, t: loss(o, t).mean(), mm.LinfBall(0.1))
        mm.PGD(2, 0.1)(bad, bad.parameters(), (x, y))
    with pytest.raises(ValueError, match="restarts"):
        mm.PGD(2, 0.1, restarts=0)
    with pytest.raises(ValueError, match="tolerance"):
        mm.DDi(tolerance=-1.0)
    with pytest.raises(TypeError, match="perturbation"):
        mm.ModuleProblem(lin, loss, None)
    with pytest.raises(ValueError, match="not in the optimizer"):
        mm.MinMaxOptimizer(
            problem,
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1),
            mm.PGD(1, 0.1),
            mm.DDi(),
        )
    with pytest.raises(MemoryError, match="per_example=False"):
        toy = ELUNetwork(n=8)
        mm.descent_direction(
            toy.problem,
            None,
            toy.batch,
            mm.PGD(1, 0.1, restarts=2),
            mm.DDi(per_example=True, memory_budget=10, gramian="materialized"),
        )
    with pytest.raises(ValueError, match="per-example values"):
        fp = mm.FunctionProblem(
            lambda p, d, b: (p["t"] * d).sum(),
            {"t": torch.ones(1)},
            mm.Box(-1.0, 1.0),
            event_shape=(1,),
        )
        mm.PGD(1, 0.1)(fp, fp.parameters(), torch.zeros(3))


def test_reprs_are_readable():
    assert repr(mm.DDi(per_example=True, tolerance=0.1)) == "DDi(per_example=True, tolerance=0.1)"
    assert repr(mm.Danskin()) == "Danskin(certify=False)"
    assert "PGD(steps=10" in repr(mm.PGD(10, 0.1, restarts=4))
    assert math.isfinite(float(Counterexample().robust_loss()))


@pytest.mark.parametrize("bn", [False, True])
def test_stacking_modes_agree(bn):
    torch.manual_seed(0)
    net = (_BNNet() if bn else nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3))).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 3, (6,))
    deltas = 0.1 * torch.randn(4, 6, 3, dtype=torch.float64)
    modes = ["auto", "vmap", "loop"] + ([] if bn else ["stack"])
    outs = []
    for mode in modes:
        problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), stacking=mode)
        outs.append(problem.values(problem.parameters(), deltas, (x, y)).detach())
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0])
    if bn:
        problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), stacking="stack")
        with pytest.raises(ValueError, match="share BatchNorm"):
            problem.values(problem.parameters(), deltas, (x, y))
    with pytest.raises(ValueError, match="stacking must be"):
        mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), stacking="fast")


def test_gram_and_qp_stay_float64_under_autocast():
    """Mixed precision (here CPU bf16 autocast, the CUDA path's analogue) leaves the Gram matrix
    and the QP in float64, and the certificate still holds."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.CELU(), nn.Linear(8, 3))
    x, y = torch.rand(16, 6), torch.randint(0, 3, (16,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1, lower=0.0, upper=1.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d, _ = mm.descent_direction(problem, None, (x, y), mm.PGD(3, 0.05, restarts=4, seed=0),
                                    mm.DDi())
    assert d.extras["gram"].dtype == torch.float64 and d.weights.dtype == torch.float64
    assert float(d.certificate) <= -float(d.norm) ** 2 + 1e-9
