"""Candidate and per-example gradients (vmap against loop), per-example DDi, BatchNorm."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import minimax as mm
from problems.toy import ELUNetwork

# ------------------------------------------------------------------------------------------------
# Gradients: vmap against loop, per-example DDi against a brute-force QP
# ------------------------------------------------------------------------------------------------


def test_vmap_and_loop_gradients_agree():
    toy = ELUNetwork(n=10)
    cands = mm.PGD(3, 0.3, restarts=4, seed=0)(toy.problem, toy.params(), toy.batch)
    a = mm.linalg.candidate_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
    b = mm.linalg.candidate_gradients(
        toy.problem, toy.params(), toy.batch, cands.deltas, mode="loop"
    )
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    a = mm.linalg.per_example_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
    b = mm.linalg.per_example_gradients(
        toy.problem, toy.params(), toy.batch, cands.deltas, mode="loop"
    )
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # per-example gradients sum to the batch gradient of each candidate
    g = mm.linalg.candidate_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
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
    grads = mm.linalg.per_example_gradients(toy.problem, toy.params(), toy.batch, cands.deltas)
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
    got = mm.linalg.candidate_gradients(problem, problem.parameters(), (x, y), deltas)
    values = mm.extend.engine_of(problem).values(problem.parameters(), deltas, (x, y))
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
    torch.manual_seed(0)
    net = _BNNet().train()
    x, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    with pytest.raises(ValueError, match="coupled"):
        mm.descent_direction(
            problem, None, (x, y), mm.PGD(2, 0.05, restarts=2), mm.DDi(per_example=True)
        )
    ev = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), batchnorm="eval")
    d, _ = mm.descent_direction(
        ev, None, (x, y), mm.PGD(2, 0.05, restarts=2), mm.DDi(per_example=True)
    )
    # a float32 model: K and ‖d‖ carry float32 rounding, so they agree to that (not to 1e-8)
    norm2 = float(d.norm) ** 2
    assert float(d.certificate) <= -norm2 + 1e-5 * norm2


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


@pytest.mark.parametrize("rule", [mm.Danskin(), mm.DDi()], ids=["danskin", "ddi"])
def test_scoring_graph_gives_the_same_direction_without_forwards(rule):
    """Where the engine keeps the scoring graph, the rule backpropagates through PGD's scoring
    forward: the direction is bitwise the same and the rule runs no forward of its own."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(128, 3))
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 3, (64,))  # 4096 entries: a loop on CPU
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1, lower=0.0, upper=1.0))
    params = problem.parameters()
    runs = []
    for keep in (False, True):
        engine = mm.Engine(problem, reuse_scoring=keep)
        with engine.step("all", 2):  # every candidate's gradient: keep where it pays
            cands = mm.PGD(3, 0.05, restarts=2, seed=0)(engine, params, (x, y))
            assert (engine.graph_for(cands.deltas) is not None) == keep
            f0, b0 = engine.passes.snapshot()
            d = rule(engine, params, (x, y), cands)
            runs.append((d, engine.passes.forward - f0, engine.passes.backward - b0))
    (d_sep, f_sep, b_sep), (d_graph, f_graph, b_graph) = runs
    for k in d_sep.vector:
        assert torch.equal(d_sep.vector[k], d_graph.vector[k]), k
    assert f_graph == 0 and b_graph == b_sep
    assert f_sep == (1 if isinstance(rule, mm.Danskin) else 2)
