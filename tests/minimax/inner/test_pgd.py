"""PGD and FGSM: closed-form maximizers, batched restarts, best iterate, pass counts."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minimax as mm

# ------------------------------------------------------------------------------------------------
# PGD
# ------------------------------------------------------------------------------------------------


@settings(max_examples=10)
@given(st.integers(0, 1000), st.sampled_from([0.05, 0.3, 1.0]))
def test_pgd_reaches_closed_form_linf_maximizer(logistic, seed, eps):
    """For logistic loss, the L∞ maximizer is δ* = ε·sign(w)·(1 − 2y)."""
    lin, loss, batch = logistic(seed=seed)
    problem = mm.ModuleProblem(lin, loss, mm.LinfBall(eps))
    cands = mm.PGD(5, eps / 2, restarts=2, seed=seed)(problem, problem.parameters(), batch)
    _, y = batch
    w = lin.weight.detach()[0]
    exact = eps * torch.sign(w) * (1 - 2 * y).unsqueeze(1)
    torch.testing.assert_close(cands.deltas, exact.expand_as(cands.deltas))
    exact_values = mm.extend.engine_of(problem).values(problem.parameters(), exact, batch).detach()
    torch.testing.assert_close(cands.best_values(), exact_values)


def test_pgd_batched_and_looped_restarts_agree(elu_network):
    toy = elu_network(n=12)
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


def test_pgd_best_iterate_is_at_least_last(elu_network):
    toy = elu_network(n=12)
    last = mm.PGD(6, 0.6, restarts=3, seed=0)(toy.problem, toy.params(), toy.batch)
    best = mm.PGD(6, 0.6, restarts=3, seed=0, select="best")(toy.problem, toy.params(), toy.batch)
    assert bool((best.values >= last.values - 1e-7).all())


def test_fgsm_is_one_signed_step(logistic):
    lin, loss, batch = logistic(seed=3)
    problem = mm.ModuleProblem(lin, loss, mm.LinfBall(0.1))
    cands = mm.FGSM()(problem, problem.parameters(), batch)
    w = lin.weight.detach()[0]
    exact = 0.1 * torch.sign(w) * (1 - 2 * batch[1]).unsqueeze(1)
    torch.testing.assert_close(cands.deltas[0], exact)


def test_pass_counts(elu_network):
    toy = elu_network(n=8)
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
    # Danskin backpropagates through PGD's scoring forward: no forward of its own
    assert (r.forward, r.backward) == (5 + 1, 5 + 1)
