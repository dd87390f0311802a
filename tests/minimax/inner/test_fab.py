"""FAB-T (`minimax.extend.fab_targeted`, `minimax.extend.FABTargeted`, attack ``"fab-t"``): the
exact
box-constrained hyperplane projection, minimality on linear models, feasibility, strength against
torchattacks' FAB, determinism, argument errors, and its place in the standard suite."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import minimax
from minimax.inner.fab import hyperplane_projection


def _digits_mlp(seed: int, n: int = 64):
    """A 64-32-10 MLP fitted (60 Adam steps) to 300 of scikit-learn's 8×8 digits; returns it and
    n held-out examples (x [n, 64] in [0, 1], y [n])."""
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    x = torch.as_tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(data.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train, test = perm[:300], perm[300 : 300 + n]
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(net(x[train]), y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), x[test], y[test]


def _size(d: torch.Tensor, norm: str) -> torch.Tensor:
    flat = d.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _robust(net, x_adv, y) -> float:
    with torch.no_grad():
        return float((net(x_adv).argmax(1) == y).double().mean())


# -- the projection --------------------------------------------------------------------------------


def _problem(seed: int, n: int = 30, D: int = 9):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, D, generator=g, dtype=torch.float64)
    w[:, 0] = 0.0  # a coordinate the hyperplane ignores
    r = torch.randn(n, generator=g, dtype=torch.float64)
    lo = -torch.rand(n, D, generator=g, dtype=torch.float64)
    hi = torch.rand(n, D, generator=g, dtype=torch.float64)
    lo[::3, 1], hi[::4, 2] = -torch.inf, torch.inf  # unbounded coordinates
    return w, r, lo, hi


def test_linf_projection_is_the_linear_programs_optimum():
    optimize = pytest.importorskip("scipy.optimize")
    import numpy as np

    w, r, lo, hi = _problem(0)
    d = hyperplane_projection(w, r, lo, hi, "linf")
    D = w.shape[1]
    reached = 0
    for i in range(w.shape[0]):
        assert bool(((d[i] >= lo[i]) & (d[i] <= hi[i])).all())
        # min t  s.t.  −t ≤ d ≤ t, ⟨w, d⟩ = r, lo ≤ d ≤ hi
        bounds = [
            (None if a == -np.inf else a, None if b == np.inf else b)
            for a, b in zip(lo[i].tolist(), hi[i].tolist())
        ]
        a_ub = np.block([[np.eye(D), -np.ones((D, 1))], [-np.eye(D), -np.ones((D, 1))]])
        lp = optimize.linprog(
            np.r_[np.zeros(D), 1.0],
            A_ub=a_ub,
            b_ub=np.zeros(2 * D),
            A_eq=np.r_[w[i].numpy(), 0.0][None],
            b_eq=[float(r[i])],
            bounds=[*bounds, (0, None)],
        )
        if lp.status == 2:  # the box cannot reach the hyperplane: every coordinate at its cap
            cap = torch.where(w[i] * r[i] > 0, hi[i], lo[i])
            assert torch.allclose(d[i], torch.where(w[i] != 0, cap, 0))
            continue
        reached += 1
        assert float(w[i] @ d[i]) == pytest.approx(float(r[i]), abs=1e-9)
        assert float(d[i].abs().max()) == pytest.approx(lp.fun, abs=1e-8)
    assert reached >= 10  # the check ran on feasible rows


def test_l2_projection_satisfies_the_optimality_conditions():
    """The minimum-norm point of {⟨w, d⟩ = r, lo ≤ d ≤ hi} is d = clip(μ·w, lo, hi) for one μ."""
    w, r, lo, hi = _problem(1)
    d = hyperplane_projection(w, r, lo, hi, "l2")
    checked = 0
    for i in range(w.shape[0]):
        free = (d[i] > lo[i] + 1e-9) & (d[i] < hi[i] - 1e-9) & (w[i] != 0)
        if not bool(free.any()):
            continue  # saturated (the box cannot reach the hyperplane)
        mu = (d[i][free] / w[i][free]).mean()
        assert torch.allclose(d[i], (mu * w[i]).clamp(lo[i], hi[i]), atol=1e-9)
        assert float(w[i] @ d[i]) == pytest.approx(float(r[i]), abs=1e-9)
        checked += 1
    assert checked >= 10
    assert torch.equal(hyperplane_projection(w, torch.zeros_like(r), lo, hi, "l2"), 0 * w)


# -- minimality, feasibility -----------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_finds_the_minimal_perturbation_of_a_linear_classifier(norm):
    """Two classes, z = Ax + b, no box: the smallest adversarial δ has norm |z_0 − z_1| / ‖w‖_*
    (w = a_1 − a_0; ‖·‖_* = L1 for L∞, L2 for L2). FAB-T breaks every example at 1.02× that
    radius and none at 0.98×."""
    g = torch.Generator().manual_seed(0)
    net = nn.Linear(6, 2)
    x = torch.randn(40, 6, generator=g)
    with torch.no_grad():
        y = net(x).argmax(1)
        w = net.weight[1] - net.weight[0]
        gap = (net(x)[:, 0] - net(x)[:, 1]).abs()
    dist = gap / (w.abs().sum() if norm == "linf" else w.norm())
    kw = dict(norm=norm, lower=None, upper=None, steps=50)
    above = minimax.extend.fab_targeted(net, x, y, eps=1.02 * dist, **kw)
    assert _robust(net, x + above, y) == 0.0
    assert bool((_size(above, norm) <= 1.02 * dist).all())
    below = minimax.extend.fab_targeted(net, x, y, eps=0.98 * dist, **kw)
    assert torch.equal(below, torch.zeros_like(x))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_points_stay_in_the_ball_and_a_narrow_box(norm):
    net, x, y = _digits_mlp(0, n=48)
    eps = torch.full((len(y),), 0.15 if norm == "linf" else 1.0)
    eps[::3] /= 2  # per-example radii
    lower = (x - 0.3).clamp(min=0)  # a per-pixel box, narrower than [0, 1]
    upper = (x + 0.05).clamp(max=1)
    d = minimax.extend.fab_targeted(
        net, x, y, eps=eps, norm=norm, lower=lower, upper=upper, steps=20
    )
    broken = d.flatten(1).abs().amax(1) > 0
    assert 0 < int(broken.sum()) < len(y)
    assert bool((_size(d, norm) <= eps).all())
    assert bool(((x + d >= lower) & (x + d <= upper)).all())
    with torch.no_grad():
        assert bool((net(x + d).argmax(1)[broken] != y[broken]).all())


def test_fab_t_inner_solver_and_attack():
    net, x, y = _digits_mlp(1, n=32)
    S = minimax.extend.threat_set("l2", 0.8)
    problem = minimax.ModuleProblem(net, perturbation=S)
    f0, b0 = minimax.extend.engine_of(problem).passes.snapshot()
    cand = minimax.extend.FABTargeted(10, targets=3)(problem, problem.parameters(), (x, y))
    f1, b1 = minimax.extend.engine_of(problem).passes.snapshot()
    assert cand.deltas.shape == (1, *x.shape) and bool(
        S.contains(cand.deltas, x, event_ndim=1).all()
    )
    assert torch.allclose(
        cand.values,
        minimax.extend.engine_of(problem).values(problem.parameters(), cand.deltas, (x, y)),
    )
    assert 0 < b1 - b0 <= 3 * 10 < f1 - f0
    adv = minimax.attack(net, x, y, eps=0.8, norm="l2", attack="fab-t", steps=10)
    assert _robust(net, adv, y) == _robust(net, x + cand.deltas[0], y) < _robust(net, x, y)
    assert "FABTargeted(steps=10, targets=3" in repr(minimax.extend.FABTargeted(10, targets=3))


# -- strength against torchattacks ----------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_is_as_strong_as_torchattacks_fab(norm):
    """On the same points, over 3 seeds (model and data), with torchattacks' AutoAttack
    configuration of FAB (``multi_targeted=True``: 9 targets, 1 restart) and the same steps: our
    robust accuracy ≤ theirs + 2/64 (two examples: float noise near the boundary)."""
    from benchmarks.attacks import import_torchattacks

    try:
        ta = import_torchattacks()
    except ImportError as error:
        pytest.skip(f"torchattacks is not importable: {error}")
    eps = 0.08 if norm == "linf" else 0.5
    gaps = []
    for seed in range(3):
        net, x, y = _digits_mlp(seed, n=64)
        ours = x + minimax.extend.fab_targeted(net, x, y, eps=eps, norm=norm, steps=20)
        theirs = ta.FAB(
            net,
            norm={"linf": "Linf", "l2": "L2"}[norm],
            eps=eps,
            steps=20,
            n_restarts=1,
            multi_targeted=True,
            n_classes=10,
            seed=seed,
        )(x, y)
        acc_ours, acc_theirs = _robust(net, ours, y), _robust(net, theirs, y)
        assert acc_ours < _robust(net, x, y) - 0.1  # the attack does something here
        assert acc_ours <= acc_theirs + 2 / 64, (seed, acc_ours, acc_theirs)
        gaps.append(acc_ours - acc_theirs)
    assert sum(gaps) <= 0.02


# -- determinism and arguments ---------------------------------------------------------------------


def test_fab_t_is_deterministic_with_a_seed():
    net, x, y = _digits_mlp(2, n=24)
    kw = dict(eps=0.05, steps=8, targets=2, restarts=2)
    a = minimax.extend.fab_targeted(net, x, y, seed=3, **kw)
    assert torch.equal(a, minimax.extend.fab_targeted(net, x, y, seed=3, **kw))
    b = minimax.attack(net, x, y, eps=0.05, attack="fab-t", steps=8, restarts=2, seed=3)
    assert torch.equal(
        b, minimax.attack(net, x, y, eps=0.05, attack="fab-t", steps=8, restarts=2, seed=3)
    )


def test_fab_t_argument_errors():
    net, x, y = _digits_mlp(0, n=8)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="eps"):
            minimax.extend.fab_targeted(net, x, y, eps=bad)
    with pytest.raises(ValueError, match="eps"):
        minimax.extend.fab_targeted(net, x, y, eps=torch.zeros(8))
    with pytest.raises(ValueError, match="norm"):
        minimax.extend.fab_targeted(net, x, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="steps"):
        minimax.extend.fab_targeted(net, x, y, eps=0.1, steps=0)
    with pytest.raises(ValueError, match="beta"):
        minimax.extend.fab_targeted(net, x, y, eps=0.1, beta=1.5)
    with pytest.raises(TypeError, match="integer class labels"):
        minimax.extend.fab_targeted(net, x, y.float(), eps=0.1)
    with pytest.raises(ValueError, match="outside the declared bounds"):
        minimax.extend.fab_targeted(net, x + 2, y, eps=0.1)
    s = {"s": torch.ones(())}
    fn = minimax.FunctionProblem(  # a problem without class logits
        lambda p, d, b: p["s"] * d.sum(-1), s, minimax.LinfBall(0.1), event_shape=(3,)
    )
    with pytest.raises(ValueError, match="ModuleProblem"):
        minimax.extend.FABTargeted(2)(fn, s, torch.zeros(4))


def test_standard_suite_is_autoattacks_and_fast_drops_fab_t():
    assert minimax.extend.SUITES["standard"] == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert minimax.extend.SUITES["fast"] == ("apgd-ce", "apgd-t", "square")
    net, x, y = _digits_mlp(0, n=24)
    r = minimax.evaluate(net, (x, y), eps=0.05, attacks="standard", steps=5)
    assert r.attacks == list(minimax.extend.SUITES["standard"])
    per = [r.per_attack[a] for a in r.attacks]
    assert per == sorted(per, reverse=True) and per[-1] == r.robust_acc
    record = minimax.extend.robustbench_record(r, dataset="digits")
    assert "autoattack_acc" in record and "standard suite)" in record["footnote"]
    fast = minimax.evaluate(net, (x, y), eps=0.05, attacks="fast", steps=5)
    assert "autoattack_acc" not in minimax.extend.robustbench_record(fast, dataset="digits")
