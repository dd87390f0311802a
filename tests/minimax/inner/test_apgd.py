"""Auto-PGD (APGD-CE / APGD-DLR): closed-form maximizers, comparison with PGD, feasibility,
pass counts, the DLR loss, reproducibility and argument errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import minimax
from minimax.inner.apgd import APGD, apgd_checkpoints, dlr_loss


def _linear_two_class(d: int = 6, b: int = 10, seed: int = 0):
    torch.manual_seed(seed)
    lin = nn.Linear(d, 2).double()
    x = torch.randn(b, d, dtype=torch.float64)
    y = torch.randint(0, 2, (b,))
    w = lin.weight.detach()
    # CE of a 2-class softmax = softplus(z_other − z_y), increasing in (w_other − w_y)·δ.
    return lin, x, y, w[1 - y] - w[y]


def _mlp(seed: int, classes: int = 10, d: int = 10, b: int = 32, scale: float = 3.0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, classes)
    )
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(scale)  # sharper logits: a nonconcave inner problem
    return net, torch.randn(b, d), torch.randint(0, classes, (b,))


# -- closed-form maximizers ------------------------------------------------------------------------


@pytest.mark.parametrize("restarts", [1, 3])
def test_ce_reaches_linf_maximizer_of_linear_softmax(restarts):
    lin, x, y, wdiff = _linear_two_class()
    eps = 0.1
    p = minimax.ModuleProblem(lin, perturbation=minimax.LinfBall(eps))
    cand = APGD(steps=20, restarts=restarts)(p, p.parameters(), (x, y))
    expected = eps * torch.sign(wdiff)
    assert cand.deltas.shape == (restarts, *x.shape)
    assert torch.allclose(cand.deltas, expected.expand_as(cand.deltas), atol=1e-5, rtol=0)
    assert torch.allclose(
        cand.values, minimax.extend.engine_of(p).values(p.parameters(), cand.deltas, (x, y))
    )


def test_ce_reaches_l2_maximizer_of_linear_softmax():
    lin, x, y, wdiff = _linear_two_class(seed=1)
    eps = 0.7
    p = minimax.ModuleProblem(lin, perturbation=minimax.L2Ball(eps))
    cand = APGD(steps=50, restarts=2)(p, p.parameters(), (x, y))
    expected = eps * wdiff / wdiff.norm(dim=-1, keepdim=True)
    assert torch.allclose(cand.deltas, expected.expand_as(cand.deltas), atol=1e-5, rtol=0)


def test_per_example_eps_and_input_bounds():
    lin, _, y, wdiff = _linear_two_class(seed=2)
    torch.manual_seed(2)
    x = torch.rand(10, 6, dtype=torch.float64)
    eps = torch.rand(10, dtype=torch.float64) * 0.5
    S = minimax.LinfBall(eps, lower=0.0, upper=1.0)
    p = minimax.ModuleProblem(lin, perturbation=S)
    cand = APGD(steps=20, restarts=2)(p, p.parameters(), (x, y))
    assert bool(S.contains(cand.deltas, x, event_ndim=1).all())
    expected = torch.clamp(eps[:, None] * torch.sign(wdiff), -x, 1 - x)
    assert torch.allclose(cand.deltas, expected.expand_as(cand.deltas), atol=1e-5, rtol=0)


def test_step_halving_locates_an_interior_maximizer():
    # g = −‖δ − c‖², c inside the L∞ ball: fixed-size sign steps oscillate at distance ~η around
    # c; APGD starts at η = 2ε = 2 and only gets close by halving its step size.
    torch.manual_seed(0)
    c = (torch.rand(6, 4, dtype=torch.float64) - 0.5) * 1.6

    def fn(params, delta, batch):
        return -params["s"] * ((delta - batch) ** 2).sum(-1)

    s = torch.tensor(1.0, dtype=torch.float64)
    p = minimax.FunctionProblem(fn, {"s": s}, minimax.LinfBall(1.0), event_shape=(4,))
    cand = APGD(steps=100, restarts=2)(p, p.parameters(), c)
    assert float((cand.deltas - c).abs().max()) < 0.02


def _reference_apgd_1d(c, eps, steps, rho=0.75, alpha=0.75):
    """The schedule, written out for one scalar δ ∈ [−ε, ε] and f(δ) = −(δ − c)², from δ⁰ = 0."""

    def f(d):
        return -((d - c) ** 2)

    def sign(v):
        return float((v > 0) - (v < 0))

    def proj(d):
        return min(max(d, -eps), eps)

    checkpoints = apgd_checkpoints(steps)
    eta = 2 * eps
    x = x_prev = 0.0
    fx = f(x)
    best, f_best = x, fx
    successes, last_w, f_best_last, reduced_last = 0, 0, f_best, False
    for t in range(1, steps + 1):
        z = proj(x + eta * sign(-2 * (x - c)))
        a = alpha if t > 1 else 1.0
        x_new = proj(x + a * (z - x) + (1 - a) * (x - x_prev))
        f_new = f(x_new)
        successes += f_new > fx
        if f_new > f_best:
            best, f_best = x_new, f_new
        x_prev, x, fx = x, x_new, f_new
        if t in checkpoints and t < steps:
            reduce = successes < rho * (t - last_w) or (not reduced_last and f_best <= f_best_last)
            if reduce:
                eta /= 2
                x = x_prev = best
                fx = f_best
            reduced_last, f_best_last, last_w, successes = reduce, f_best, t, 0
    return best


@pytest.mark.parametrize(
    ("steps", "alpha", "rho"),
    [(10, 0.75, 0.75), (40, 0.75, 0.75), (40, 0.5, 0.75), (25, 1.0, 0.75), (40, 0.75, 0.0)],
)
def test_schedule_matches_a_scalar_reference(steps, alpha, rho):
    # rho = 0 switches condition 1 off: only condition 2 halves the step then
    cs = [-0.93, -0.61, -0.3, -0.07, 0.02, 0.33, 0.5, 0.77, 0.9]
    c = torch.tensor(cs, dtype=torch.float64).unsqueeze(-1)

    def fn(params, delta, batch):
        return -params["s"] * ((delta - batch) ** 2).sum(-1)

    s = torch.tensor(1.0, dtype=torch.float64)
    p = minimax.FunctionProblem(fn, {"s": s}, minimax.LinfBall(1.0), event_shape=(1,))
    solver = APGD(steps=steps, alpha=alpha, rho=rho, random_start=False)
    cand = solver(p, p.parameters(), c)
    expected = [_reference_apgd_1d(ci, 1.0, steps, rho, alpha) for ci in cs]
    assert cand.deltas[0, :, 0].tolist() == pytest.approx(expected, abs=1e-12, rel=0)


# -- nonconvex: APGD vs PGD ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linf", "l2"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ce_at_least_pgd_on_mlp_and_feasible(kind, seed):
    net, x, y = _mlp(seed)
    S = minimax.LinfBall(0.5) if kind == "linf" else minimax.L2Ball(1.5)
    p = minimax.ModuleProblem(net, perturbation=S)
    steps, m = 20, 2
    apgd = APGD(steps=steps, restarts=m)(p, p.parameters(), (x, y))
    assert bool(S.contains(apgd.deltas, event_ndim=1).all())
    assert torch.allclose(
        apgd.values, minimax.extend.engine_of(p).values(p.parameters(), apgd.deltas, (x, y))
    )
    eps = float(S.eps)
    for step_size in (eps / 4, eps / 10):
        for select in ("last", "best"):
            pgd = minimax.PGD(steps=steps, step_size=step_size, restarts=m, select=select)
            ref = pgd(p, p.parameters(), (x, y))
            assert float(apgd.values.mean()) >= float(ref.values.mean()) - 1e-3


def test_best_iterate_is_never_worse_than_the_start():
    net, x, y = _mlp(3)
    p = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.5))
    solver = APGD(steps=10, restarts=3, seed=5)
    start = APGD(steps=0, restarts=3, seed=5)(p, p.parameters(), (x, y))
    cand = solver(p, p.parameters(), (x, y))
    assert bool((cand.values >= start.values).all())


# -- APGD-DLR --------------------------------------------------------------------------------------


def test_dlr_runs_feasible_and_reports_problem_values():
    net, x, y = _mlp(4, classes=10)
    S = minimax.LinfBall(0.5)
    p = minimax.ModuleProblem(net, perturbation=S)
    cand = APGD(steps=15, restarts=2, loss="dlr")(p, p.parameters(), (x, y))
    assert cand.deltas.shape == (2, *x.shape) and cand.values.shape == (2, x.shape[0])
    assert bool(S.contains(cand.deltas, event_ndim=1).all())
    ce = minimax.extend.engine_of(p).values(p.parameters(), cand.deltas, (x, y))
    assert torch.allclose(cand.values, ce, atol=1e-6)
    # the attack raised the DLR loss above its value at the clean input
    with torch.no_grad():
        logits = net(x.unsqueeze(0) + cand.deltas)
        clean = net(x)
    assert float(dlr_loss(logits, y).mean()) > float(dlr_loss(clean, y).mean())


@pytest.mark.parametrize("batchnorm", ["per_restart", "eval"])
def test_dlr_with_batchnorm_uses_each_candidates_own_forward(batchnorm):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    x, y = torch.randn(12, 5), torch.randint(0, 4, (12,))
    p = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.2), batchnorm=batchnorm)
    running = net[1].running_mean.clone()
    cand = APGD(steps=6, restarts=3, loss="dlr")(p, p.parameters(), (x, y))
    assert torch.equal(running, net[1].running_mean)  # no running-statistics update inside
    one_by_one = torch.stack(
        [
            minimax.extend.engine_of(p).values(p.parameters(), cand.deltas[i], (x, y))
            for i in range(3)
        ]
    )
    assert torch.allclose(cand.values, one_by_one, atol=1e-6)


def test_dlr_loss_invariant_to_logit_shift_and_scale():
    torch.manual_seed(0)
    z = torch.randn(7, 5, 10, dtype=torch.float64)
    y = torch.randint(0, 10, (5,))
    base = dlr_loss(z, y)
    assert base.shape == (7, 5)
    for a, b in [(3.0, 0.0), (1.0, -5.0), (0.25, 2.0), (10.0, 100.0)]:
        assert torch.allclose(dlr_loss(a * z + b, y), base, rtol=1e-8, atol=1e-10)
    # positive iff misclassified; equals the formula by hand
    correct = z.argmax(-1) == y
    assert bool(((base < 0) == correct).all())
    zs = z.sort(-1, descending=True).values
    zy = z.gather(-1, y.expand(7, 5).unsqueeze(-1)).squeeze(-1)
    other = torch.where(correct, zs[..., 1], zs[..., 0])
    assert torch.allclose(base, -(zy - other) / (zs[..., 0] - zs[..., 2] + 1e-12))


def test_dlr_needs_three_classes():
    with pytest.raises(ValueError, match="3 classes"):
        dlr_loss(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    lin, x, y, _ = _linear_two_class()
    p = minimax.ModuleProblem(lin, perturbation=minimax.LinfBall(0.1))
    with pytest.raises(ValueError, match="3 classes"):
        APGD(steps=3, loss="dlr")(p, p.parameters(), (x, y))


# -- bookkeeping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("loss", "extra"), [("ce", 0), ("dlr", 1)])
def test_pass_counts(loss, extra):
    net, x, y = _mlp(0, b=8)
    p = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.1))
    steps, m = 7, 3
    APGD(steps=steps, restarts=m, loss=loss)(p, p.parameters(), (x, y))
    assert minimax.extend.engine_of(p).passes.snapshot() == (m * (steps + 1 + extra), m * steps)


def test_zero_steps_returns_the_start():
    net, x, y = _mlp(0, b=8)
    p = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.1))
    cand = APGD(steps=0, restarts=2, random_start=False)(p, p.parameters(), (x, y))
    assert torch.equal(cand.deltas, torch.zeros(2, *x.shape))
    assert minimax.extend.engine_of(p).passes.snapshot() == (2, 0)


def test_seeded_reproducibility_and_generator_override():
    net, x, y = _mlp(0, b=8)
    p = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.3))
    a = APGD(steps=5, restarts=4, seed=11)(p, p.parameters(), (x, y))
    b = APGD(steps=5, restarts=4, seed=11)(p, p.parameters(), (x, y))
    assert a.deltas.shape == (4, *x.shape) and a.values.shape == (4, 8)
    assert torch.equal(a.deltas, b.deltas) and torch.equal(a.values, b.values)
    c = APGD(steps=5, restarts=4, seed=12)(p, p.parameters(), (x, y))
    assert not torch.equal(a.deltas, c.deltas)
    gen = torch.Generator().manual_seed(11)
    d = APGD(steps=5, restarts=4, seed=99)(p, p.parameters(), (x, y), generator=gen)
    assert torch.equal(a.deltas, d.deltas)


def test_checkpoints():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(0) == []
    assert apgd_checkpoints(1) == [1]
    cps = apgd_checkpoints(37)
    assert cps == sorted(set(cps)) and 0 < cps[0] and cps[-1] <= 37


def test_repr():
    r = repr(APGD(steps=50, restarts=2, loss="dlr"))
    assert r == "APGD(steps=50, restarts=2, loss='dlr', rho=0.75, alpha=0.75, random_start=True)"


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": "cw"},
        {"steps": -1},
        {"steps": 2.5},
        {"restarts": 0},
        {"rho": 1.5},
        {"alpha": 0.0},
        {"alpha": 1.2},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        APGD(**kwargs)


def test_dlr_on_function_problem_is_rejected():
    p = minimax.FunctionProblem(
        lambda params, d, batch: (params["w"] * d).sum(-1),
        {"w": torch.ones(3)},
        minimax.LinfBall(0.1),
        event_shape=(3,),
    )
    with pytest.raises(ValueError, match="logits"):
        APGD(steps=2, loss="dlr")(p, p.parameters(), torch.zeros(4, 3))
    cand = APGD(steps=2)(p, p.parameters(), torch.zeros(4, 3))  # "ce": g itself works
    assert torch.allclose(cand.values, torch.full((1, 4), 0.3))


@pytest.mark.parametrize("S", [minimax.L1Ball(0.5), minimax.Box(-1.0, 1.0)], ids=["l1", "box"])
def test_unsupported_sets_are_rejected(S):
    net, x, y = _mlp(0, b=4)
    p = minimax.ModuleProblem(net, perturbation=S)
    with pytest.raises(ValueError, match="LinfBall and L2Ball"):
        APGD(steps=2)(p, p.parameters(), (x, y))
