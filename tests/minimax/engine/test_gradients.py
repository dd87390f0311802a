"""Candidate and per-example gradients (vmap against loop), per-example DDi against a brute-force
QP, and the Gram matrix and QP in float64 under autocast."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import minimax as mm

# ------------------------------------------------------------------------------------------------
# Gradients: vmap against loop, per-example DDi against a brute-force QP
# ------------------------------------------------------------------------------------------------


def test_vmap_and_loop_gradients_agree(elu_network):
    toy = elu_network(n=10)
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
def test_per_example_ddi_equals_brute_force_qp(elu_network, seed, b, m):
    cp = pytest.importorskip("cvxpy")
    torch.manual_seed(seed)
    toy = elu_network(n=b, seed=seed, dtype=torch.float64)
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


def test_gram_and_qp_stay_float64_under_autocast():
    """Mixed precision (here CPU bf16 autocast, the CUDA path's analogue) leaves the Gram matrix
    and the QP in float64, and the certificate still holds."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.CELU(), nn.Linear(8, 3))
    x, y = torch.rand(16, 6), torch.randint(0, 3, (16,))
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1, lower=0.0, upper=1.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d, _ = mm.descent_direction(
            problem, None, (x, y), mm.PGD(3, 0.05, restarts=4, seed=0), mm.DDi()
        )
    assert d.extras["gram"].dtype == torch.float64 and d.weights.dtype == torch.float64
    assert float(d.certificate) <= -(float(d.norm) ** 2) + 1e-9
