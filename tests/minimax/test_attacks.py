"""Square, APGD-T, `minimax.attack` and `minimax.evaluate`: feasibility, strength against weaker
baselines, the published schedules, mode handling, cascade logic and the RobustBench record."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import minimax
from minimax.inner.square import _l2_pattern, _place, _window_mask
from tests.minimax.classifiers import fitted_classifier


def _classifier(seed: int = 0, n: int = 96, classes: int = 10):
    return fitted_classifier(seed, n, classes)


def _accuracy(net, x, y, deltas):
    ok = torch.ones_like(y, dtype=torch.bool)
    with torch.no_grad():
        for d in deltas:
            ok &= net(x + d).argmax(1) == y
    return float(ok.double().mean())


# -- the published schedules and losses ------------------------------------------------------------


def test_square_fraction_follows_the_published_schedule():
    f = minimax.extend.square_fraction
    assert [f(0.8, q, 10000) for q in (0, 10, 11, 50, 51, 200, 201)] == [
        0.8,
        0.8,
        0.4,
        0.4,
        0.2,
        0.2,
        0.1,
    ]
    assert f(0.8, 9999, 10000) == pytest.approx(0.8 / 512)
    # rescaled to the budget: 1000 queries halve at 1.1, 5.1, 20.1, ...
    assert f(0.8, 2, 1000) == 0.4 and f(0.8, 6, 1000) == 0.2 and f(0.8, 1000, 1000) == 0.8 / 512


def test_margin_and_targeted_dlr_losses():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, -2.0]])
    y = torch.tensor([0, 0])
    assert torch.allclose(minimax.extend.margin_loss(logits, y), torch.tensor([-2.0, 2.0]))
    t = torch.tensor([1, 2])
    dlr = minimax.extend.targeted_dlr_loss(logits, y, t)
    # −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)
    assert torch.allclose(dlr, torch.tensor([-2.0 / 3.5, 1.0 / 3.0]))
    assert torch.allclose(minimax.extend.targeted_dlr_loss(3 * logits + 5, y, t), dlr, atol=1e-6)
    with pytest.raises(ValueError, match="4 classes"):
        minimax.extend.targeted_dlr_loss(logits[:, :3], y, t)


def test_l2_pattern_and_windows():
    p = _l2_pattern(5, 5)
    assert p.norm() == pytest.approx(1.0) and abs(float(p.sum())) < 0.5
    g = torch.Generator().manual_seed(0)
    mask = _window_mask(8, 8, (3, 3), 50, g)
    assert bool((mask.sum(dim=(1, 2, 3)) == 9).all())
    placed = _place(p[:3, :3].contiguous(), mask, torch.zeros(50, dtype=torch.bool))
    assert bool((placed[~mask] == 0).all())
    assert torch.allclose(placed.flatten(1).norm(dim=1), p[:3, :3].norm().expand(50))


# -- feasibility and strength ----------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_and_apgd_t_stay_in_the_ball_and_beat_weak_baselines(norm):
    net, x, y = _classifier()
    eps = 0.15 if norm == "linf" else 0.6
    eps_b = torch.full((len(y),), eps)
    eps_b[::4] = eps / 2  # per-example radii
    S = minimax.extend.threat_set(norm, eps_b)
    problem = minimax.ModuleProblem(net, perturbation=S)
    params = problem.parameters()
    clean = _accuracy(net, x, y, torch.zeros(1, *x.shape))
    noise = minimax.PGD(0, 0.0, restarts=1, random_start=True, seed=1)(problem, params, (x, y))
    fgsm = minimax.FGSM()(problem, params, (x, y))
    square = minimax.Square(200, seed=0)(problem, params, (x, y))
    apgdt = minimax.extend.APGDTargeted(20, targets=4, seed=0)(problem, params, (x, y))
    for c in (square, apgdt):
        assert bool(S.contains(c.deltas, x, event_ndim=3).all())
        assert torch.allclose(
            c.values, minimax.extend.engine_of(problem).values(params, c.deltas, (x, y))
        )
    assert apgdt.deltas.shape == (4, *x.shape)
    acc = {
        k: _accuracy(net, x, y, c.deltas)
        for k, c in [("noise", noise), ("fgsm", fgsm), ("square", square), ("apgd-t", apgdt)]
    }
    assert acc["square"] <= acc["noise"] < clean + 1e-9
    assert acc["apgd-t"] <= acc["fgsm"]
    assert acc["square"] < clean - 0.1 and acc["apgd-t"] < clean - 0.1


def test_square_objective_mode_finds_the_vertex_of_a_linear_function():
    c = torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0, 2.0]])

    def fn(params, delta, batch):
        return params["s"] * (delta * c).sum(-1)

    S = minimax.LinfBall(0.3)
    problem = minimax.FunctionProblem(fn, {"s": torch.ones(())}, S, event_shape=(6,))
    cand = minimax.Square(400, restarts=2, loss="objective", seed=0)(
        problem, problem.parameters(), torch.zeros(5)
    )
    expected = 0.3 * torch.sign(c).expand(5, 6)
    assert torch.allclose(cand.deltas, expected.expand_as(cand.deltas))
    with pytest.raises(ValueError, match="ModuleProblem"):
        minimax.Square(10)(problem, problem.parameters(), torch.zeros(5))


def test_apgd_t_early_stop_keeps_fooling_deltas_and_counts_passes():
    net, x, y = _classifier(seed=1)
    problem = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.3, lower=0, upper=1))
    f0, b0 = minimax.extend.engine_of(problem).passes.snapshot()
    cand = minimax.extend.APGDTargeted(10, targets=3, seed=0)(problem, problem.parameters(), (x, y))
    f1, b1 = minimax.extend.engine_of(problem).passes.snapshot()
    assert 0 < b1 - b0 <= 3 * 10 and f1 - f0 > b1 - b0
    with torch.no_grad():
        fooled_first = net(x + cand.deltas[0]).argmax(1) != y
    assert bool(fooled_first.any())
    assert torch.equal(cand.deltas[1][fooled_first], cand.deltas[0][fooled_first])


# -- minimax.attack --------------------------------------------------------------------------------


def test_attack_restores_every_modules_mode_and_running_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
    )
    net.train()
    net[2].eval()  # a mixed state must come back as it was
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 10, (16,))
    stats = net[2].running_mean.clone()
    for mode in ("eval", "train", "as-is"):
        x_adv = minimax.attack(net, x, y, eps=0.1, attack="pgd", steps=3, mode=mode)
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert net.training and not net[2].training and net[1].training
        assert torch.equal(net[2].running_mean, stats)


def test_attack_is_seeded_and_at_least_as_strong_as_its_restarts():
    net, x, y = _classifier()
    a = minimax.attack(net, x, y, eps=0.1, attack="pgd", steps=5, seed=3)
    b = minimax.attack(net, x, y, eps=0.1, attack="pgd", steps=5, seed=3)
    assert torch.equal(a, b)
    more = minimax.attack(net, x, y, eps=0.1, attack="pgd", steps=5, restarts=3, seed=3)
    assert _accuracy(net, more, y, torch.zeros(1, *x.shape)) <= _accuracy(
        net, a, y, torch.zeros(1, *x.shape)
    )


def test_attack_argument_errors():
    net, x, y = _classifier()
    with pytest.raises(ValueError, match="norm"):
        minimax.attack(net, x, y, eps=0.1, norm="l3")
    with pytest.raises(ValueError, match="unknown attack"):
        minimax.attack(net, x, y, eps=0.1, attack="cw")
    with pytest.raises(ValueError, match="mode"):
        minimax.attack(net, x, y, eps=0.1, mode="test")
    with pytest.raises(TypeError, match="floating-point"):
        minimax.attack(net, (x * 255).long(), y, eps=0.1)
    with pytest.raises(ValueError, match="steps"):
        minimax.attack(net, x, y, eps=0.1, steps=0)


# -- minimax.evaluate ------------------------------------------------------------------------------


def test_evaluate_cascade_worst_case_and_data_loader():
    net, x, y = _classifier()
    kw = dict(eps=0.1, attacks=("fgsm", "pgd", "square"), steps=10, seed=0)
    r = minimax.evaluate(net, (x, y), batch_size=40, **kw)
    per = [r.per_attack[a] for a in r.attacks]
    assert per == sorted(per, reverse=True) and per[-1] == r.robust_acc <= r.clean_acc
    assert r.robust.shape == (len(y),) and not bool((r.robust & ~r.clean).any())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=40)
    assert minimax.evaluate(net, loader, **kw).robust_acc == r.robust_acc
    alone = minimax.evaluate(net, (x, y), batch_size=40, cascade=False, **kw)
    assert alone.robust_acc == pytest.approx(r.robust_acc, abs=0.05)
    assert min(alone.per_attack.values()) >= alone.robust_acc
    assert minimax.evaluate(net, (x, y), eps=0.1, attacks="first-two", steps=5).attacks == [
        "apgd-ce",
        "apgd-t",
    ]


@pytest.mark.parametrize("cascade", [True, False])
def test_evaluate_per_example_per_attack_results(cascade):
    net, x, y = _classifier(seed=1)
    attacks = {"one-step": minimax.FGSM(), "pgd": "pgd"}  # labels name them in the results
    r = minimax.evaluate(
        net,
        (x, y),
        eps=0.1,
        attacks=attacks,
        steps=5,
        restarts=2,
        batch_size=40,
        cascade=cascade,
        return_adversarial=True,
    )
    assert r.attacks == ["one-step", "pgd"] and set(r.correct) == set(attacks)
    for label, flags in r.correct.items():
        assert flags.dtype == torch.bool and flags.shape == (len(y),)
        assert r.per_attack[label] == float(flags.double().mean())
        assert not bool((flags & ~r.clean).any())
    together = r.clean & r.correct["one-step"] & r.correct["pgd"]
    assert torch.equal(r.robust, r.correct["pgd"] if cascade else together)
    assert 0 < r.robust_acc < r.clean_acc  # the attacks break some examples, not all
    with torch.no_grad():
        assert torch.equal(r.clean_logits, net(x))
        assert torch.equal(r.clean, net(x).argmax(1) == y)
        # the worst input is misclassified exactly where an example is not robust
        assert torch.equal(r.worst_logits.argmax(1) == y, r.robust)
        adv = r.adversarial
        assert adv is not None and adv.shape == x.shape
        assert float((adv - x).abs().max()) <= 0.1 + 1e-6 and 0 <= float(adv.min())
        torch.testing.assert_close(net(adv), r.worst_logits)
        assert torch.equal(net(adv).argmax(1) == y, r.robust)
    untouched = ~r.clean  # no attack ran on them: the worst input is the clean one
    assert torch.equal(adv[untouched], x[untouched])
    plain = minimax.evaluate(net, (x, y), eps=0.1, attacks="fgsm", batch_size=40)
    assert plain.adversarial is None


def test_robustbench_record(tmp_path):
    net, x, y = _classifier()
    r = minimax.evaluate(net, (x, y), eps=8 / 255, attacks="standard", steps=5)
    rec = minimax.write_robustbench(r, tmp_path / "m.json", dataset="cifar10", name="demo")
    assert json.loads((tmp_path / "m.json").read_text()) == rec
    assert rec["threat_model"] == "Linf" and rec["eps"] == "8/255" and rec["dataset"] == "cifar10"
    assert rec["clean_acc"] == f"{100 * r.clean_acc:.2f}"
    assert rec["autoattack_acc"] == f"{100 * r.robust_acc:.2f}" and rec["name"] == "demo"
    r2 = minimax.evaluate(net, (x, y), eps=0.5, norm="l2", attacks=("pgd",), steps=2)
    rec2 = minimax.extend.robustbench_record(r2, dataset="cifar10")
    assert rec2["threat_model"] == "L2" and rec2["eps"] == "0.5" and "autoattack_acc" not in rec2


# -- against torchattacks --------------------------------------------------------------------------


def test_apgd_t_and_square_match_torchattacks_on_a_tiny_model():
    from benchmarks.attacks import import_torchattacks

    try:
        ta = import_torchattacks()
    except ImportError as error:
        pytest.skip(f"torchattacks is not importable: {error}")
    net, x, y = _classifier(seed=2, n=64)
    for name, eps, ours, theirs in [
        ("apgd-t", 0.1, "apgd-t", lambda: ta.APGDT(net, eps=0.1, steps=20, seed=0, n_classes=10)),
        ("square", 0.1, "square", lambda: ta.Square(net, eps=0.1, n_queries=200, seed=0)),
    ]:
        steps = 20 if name == "apgd-t" else 200
        mine = minimax.attack(net, x, y, eps=eps, attack=ours, steps=steps, seed=0)
        torch.manual_seed(0)
        other = theirs()(x, y)
        acc_mine = _accuracy(net, mine, y, torch.zeros(1, *x.shape))
        acc_other = _accuracy(net, other, y, torch.zeros(1, *x.shape))
        assert acc_mine <= acc_other + 0.1, (name, acc_mine, acc_other)


# -- minimax.backward ------------------------------------------------------------------------------


def test_backward_fills_grad_with_the_direction_and_accumulates():
    net, x, y = _classifier(seed=3, n=32)
    net.zero_grad(set_to_none=True)
    problem = minimax.ModuleProblem(net, perturbation=minimax.LinfBall(0.05, lower=0, upper=1))
    inner = minimax.PGD(3, 0.02, restarts=2, seed=0)
    d = minimax.backward(problem, (x, y), inner, minimax.DDi())
    for name, p in problem.parameters().items():
        assert torch.equal(p.grad, d.vector[name])
    again = minimax.backward(
        problem, (x, y), minimax.PGD(3, 0.02, restarts=2, seed=0), minimax.DDi()
    )
    for name, p in problem.parameters().items():
        assert torch.allclose(p.grad, d.vector[name] + again.vector[name])


def test_backward_refuses_a_non_finite_direction_and_leaves_grad_alone():
    net, x, y = _classifier(seed=3, n=8)
    net.zero_grad(set_to_none=True)

    def overflow(outputs, y):
        return outputs.sum(-1) * torch.inf

    problem = minimax.ModuleProblem(
        net, loss_fn=overflow, perturbation=minimax.LinfBall(0.05, lower=0, upper=1)
    )
    with pytest.raises(FloatingPointError, match="not finite"):
        minimax.backward(problem, (x, y), minimax.PGD(1, 0.01), minimax.Danskin())
    assert all(p.grad is None for p in net.parameters())


def test_threat_set_refuses_a_radius_wider_than_the_range_unless_allowed():
    with pytest.raises(ValueError, match=r"wider than the input range.*allow_large_eps=True"):
        minimax.extend.threat_set("linf", 8.0)
    S = minimax.extend.threat_set("linf", 8.0, allow_large_eps=True)
    assert float(S.eps) == 8.0
    minimax.extend.threat_set("l2", 8.0)  # an L2 radius over 1 is an ordinary radius
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(5, 4), torch.randint(0, 3, (5,))
    with pytest.raises(ValueError, match="allow_large_eps"):
        minimax.attack(model, x, y, eps=2.0, attack="pgd", steps=2)
    adv = minimax.attack(model, x, y, eps=2.0, attack="pgd", steps=2, allow_large_eps=True)
    assert bool(((adv >= 0) & (adv <= 1)).all())


# -- costs and throughput --------------------------------------------------------------------------


def test_evaluate_records_cpu_time_passes_and_examples_per_attack():
    net, x, y = _classifier(seed=4, n=40)
    r = minimax.evaluate(net, (x, y), eps=0.1, attacks=("pgd", "square"), steps=6, batch_size=25)
    labels = ["clean", "pgd", "square"]
    assert list(r.seconds) == list(r.cpu_seconds) == list(r.passes) == list(r.attacked) == labels
    assert r.attacked["clean"] == 40
    assert r.attacked["pgd"] == int(r.clean.sum())  # every clean-correct example
    assert r.attacked["square"] == int(r.correct["pgd"].sum())  # the cascade's survivors
    # PGD: 6 forward+backward and the check, over two batches (evaluate reads only the deltas:
    # no scoring forward)
    assert r.passes["pgd"] == {"forward": 2 * (6 + 1), "backward": 2 * 6}
    assert r.passes["clean"] == {"forward": 1, "backward": 0}  # the checked forward, reused
    assert r.passes["square"]["backward"] == 0 and r.passes["square"]["forward"] >= 2
    assert all(t >= 0 for t in r.cpu_seconds.values())
    rate = r.images_per_second()
    assert rate["pgd"] == pytest.approx(r.attacked["pgd"] / r.seconds["pgd"])
    d = json.loads(json.dumps(r.to_dict()))
    assert d["passes"] == r.passes and d["attacked"] == r.attacked
    assert set(d["images_per_second"]) == set(labels)
    both = minimax.Evaluation.cat([r, r])
    assert both.passes["pgd"]["forward"] == 2 * r.passes["pgd"]["forward"]
    assert both.attacked["square"] == 2 * r.attacked["square"]
    assert both.cpu_seconds["pgd"] == pytest.approx(2 * r.cpu_seconds["pgd"])


def test_evaluate_runs_one_clean_forward_per_batch():
    net, x, y = _classifier(seed=5, n=30)
    calls = []
    handle = net.register_forward_hook(lambda m, i, o: calls.append(int(o.shape[0])))
    try:
        minimax.evaluate(net, (x, y), eps=0.1, attacks=("fgsm",), batch_size=10)
    finally:
        handle.remove()
    with torch.no_grad():
        clean = int(net(x).argmax(1).eq(y).sum())
    # per batch: one clean forward (10 rows), then on the clean-correct rows FGSM's forward
    # (with its backward) and the check (no scoring forward: evaluate reads only the deltas);
    # the first batch's clean forward is the one that checks the model's output, not repeated
    assert sum(calls) == 30 + 2 * clean


def test_evaluate_at_torchattacks_budgets_is_as_strong_as_its_autoattack():
    from benchmarks.attacks import import_torchattacks

    try:
        ta = import_torchattacks()
    except ImportError as error:
        pytest.skip(f"torchattacks is not importable: {error}")
    net, x, y = _classifier(seed=6, n=32)
    suite = {
        "apgd-ce": minimax.APGD(10, seed=0),
        "apgd-t": minimax.extend.APGDTargeted(10, targets=9, seed=0),
        "fab-t": minimax.extend.FABTargeted(10, targets=9, seed=0),
        "square": minimax.Square(5000, p_init=0.8, seed=0),
    }
    ours = minimax.evaluate(net, (x, y), eps=0.1, attacks=suite)
    torch.manual_seed(0)
    adv = ta.AutoAttack(net, norm="Linf", eps=0.1, version="standard", seed=0)(x, y)
    theirs = _accuracy(net, adv, y, torch.zeros(1, *x.shape))
    assert ours.robust_acc <= theirs + 1 / 32, (ours.robust_acc, theirs)


@pytest.mark.parametrize("h, w, side", [(8, 8, (3, 3)), (1, 300, (1, 120)), (256, 5, (200, 2))])
def test_window_mask_is_one_window_of_the_side_inside_the_plane(h, w, side):
    gen = torch.Generator().manual_seed(0)
    mask = _window_mask(h, w, side, 6, gen)
    assert mask.shape == (6, 1, h, w)
    for m in mask[:, 0]:
        rows, cols = torch.nonzero(m.any(1)).squeeze(1), torch.nonzero(m.any(0)).squeeze(1)
        assert int(m.sum()) == side[0] * side[1]  # a full rectangle of that size
        assert rows.numel() == side[0] and cols.numel() == side[1]
        assert int(rows[-1] - rows[0]) == side[0] - 1 and int(cols[-1] - cols[0]) == side[1] - 1


def test_pgd_attack_checks_the_model_at_its_first_step_without_a_forward_of_its_own():
    net, x, y = _classifier()
    calls = []
    handle = net.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    x_adv = minimax.attack(net, x, y, eps=0.1, attack="pgd", steps=3)
    handle.remove()
    assert calls == [True, True, True]  # 3 steps (attack reads only the deltas: no scoring)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
    # a model that cannot take x: the same clear error as the attacks that check first
    flat = nn.Sequential(nn.Flatten(), nn.Linear(7, 10))
    for name in ("pgd", "apgd-ce"):
        with pytest.raises(ValueError, match="model cannot take x of shape"):
            minimax.attack(flat, x, y, eps=0.1, attack=name, steps=1)
