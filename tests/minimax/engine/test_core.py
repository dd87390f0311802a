"""The execution engine: the one owner of evaluating, differentiating and counting passes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import minimax as mm

ROOT = Path(__file__).resolve().parents[3]


def _calls(path: Path) -> list[tuple[str, str]]:
    """(callee attribute, first argument's source) of every call in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if isinstance(node.func, ast.Name):
                name = node.func.id
            args = [ast.unparse(a) for a in node.args]
            out.append((name, " ".join(args)))
    return out


def test_only_the_engine_counts_and_downcasts_problems():
    """No `passes.add` outside `minimax/engine/`, and no `isinstance(..., ModuleProblem)` outside
    `minimax/problem/` and `minimax/engine/`."""
    for path in sorted((ROOT / "minimax").rglob("*.py")) + sorted(
        (ROOT / "problems").rglob("*.py")
    ):
        rel = path.relative_to(ROOT).as_posix()
        calls = _calls(path)
        if not rel.startswith("minimax/engine/"):
            text = path.read_text(encoding="utf-8")
            assert "passes.add(" not in text, rel
        if not rel.startswith(("minimax/engine/", "minimax/problem/")):
            bad = [a for name, a in calls if name == "isinstance" and "ModuleProblem" in a]
            assert not bad, (rel, bad)


def test_engines_of_a_problem_share_its_counter_and_uncounted_leaves_it(tiny_problem):
    problem, batch = tiny_problem()
    engine, other = mm.extend.engine_of(problem), mm.Engine(problem, stacking="loop")
    assert engine is mm.extend.engine_of(problem) and engine.passes is other.passes
    deltas = torch.zeros(3, 5, 3)
    other.values(problem.parameters(), deltas, batch)
    assert engine.passes.snapshot() == (3, 0)
    with engine.uncounted():
        engine.values_and_input_grad(problem.parameters(), deltas, batch)
    assert engine.passes.snapshot() == (3, 0)
    dlr = engine.with_loss(mm.extend.dlr_loss)
    dlr.values(problem.parameters(), deltas, batch)
    assert engine.passes.snapshot() == (6, 0)  # the surrogate counts on the same counter
    logits = engine.logits(problem.parameters(), deltas, batch)
    assert logits.shape == (3, 5, 3) and engine.passes.snapshot() == (9, 0)


def test_the_engine_refuses_non_finite_values_and_the_optimizer_applies_the_policy(tiny_problem):
    problem, batch = tiny_problem()
    x, y = batch
    sgd = torch.optim.SGD(problem.parameters().values(), lr=0.1)
    opt = mm.MinMaxOptimizer(problem, sgd, mm.PGD(1, 0.05), mm.DDi(), nonfinite="skip")
    before = {k: v.clone() for k, v in problem.parameters().items()}
    with torch.no_grad():
        problem.model[0].weight[0, 0] = float("nan")
    before["0.weight"][0, 0] = float("nan")
    report = opt.step((x, y))
    assert report.skipped and opt.skipped_steps == 1
    for k, v in problem.parameters().items():
        assert torch.equal(v.nan_to_num(), before[k].nan_to_num()), k
    with pytest.raises(mm.NonFiniteError):
        mm.PGD(1, 0.05)(problem, problem.parameters(), (x, y))


def test_input_gradients_is_values_and_input_grad_with_the_checks_done_once(bn_net):
    """The loop PGD runs: the same values and gradients as `values_and_input_grad`, counted, and
    train-mode BatchNorm's running statistics untouched, through the model itself or through
    parameters that are not the model's own (functional_call)."""
    torch.manual_seed(0)
    net = bn_net().train()
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    x, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    engine = mm.extend.engine_of(problem)
    delta = 0.05 * torch.randn(6, 3)
    stats = net.bn.running_mean.clone()
    foreign = {k: v.detach().clone() * 1.5 for k, v in problem.parameters().items()}
    for params in (problem.parameters(), foreign):
        v0, g0 = engine.values_and_input_grad(params, delta[None], (x, y))
        before = engine.passes.snapshot()
        with engine.input_gradients(params, (x, y)) as at:
            v1, g1 = at(delta)
            v2, _ = at(2 * delta)
        assert engine.passes.snapshot() == (before[0] + 2, before[1] + 2)
        torch.testing.assert_close(v1, v0[0], rtol=0, atol=0)
        torch.testing.assert_close(g1, g0[0], rtol=0, atol=0)
        assert not v1.requires_grad and not torch.equal(v1, v2)
    assert torch.equal(net.bn.running_mean, stats) and net.training


def test_input_gradients_uses_a_subclass_objective_and_checks_the_loss_shape(tiny_problem):
    problem, batch = tiny_problem()

    class Doubled(mm.ModuleProblem):
        def objective(self, params, delta, batch):
            return 2 * super().objective(params, delta, batch)

    class Shifted(mm.ModuleProblem):  # its own network: the loops must call it
        def network(self, params, inputs):
            return super().network(params, inputs + 1.0)

    delta = torch.zeros_like(batch[0])
    with mm.extend.engine_of(problem).input_gradients(problem.parameters(), batch) as at:
        v1, _ = at(delta)
    doubled = Doubled(problem.model, perturbation=problem.perturbation)
    with mm.extend.engine_of(doubled).input_gradients(doubled.parameters(), batch) as at:
        v2, _ = at(delta)
    torch.testing.assert_close(v2, 2 * v1)
    shifted = Shifted(problem.model, perturbation=problem.perturbation)
    expected = mm.extend.engine_of(shifted).values(shifted.parameters(), delta[None], batch)[0]
    torch.testing.assert_close(
        mm.extend.engine_of(shifted).evaluator(shifted.parameters(), batch)(delta), expected
    )
    assert not torch.allclose(expected, v1)
    mean = mm.ModuleProblem(problem.model, lambda out, y: out.sum(), problem.perturbation)
    with mm.extend.engine_of(mean).input_gradients(mean.parameters(), batch) as at:
        with pytest.raises(ValueError, match="reduction='none'"):
            at(delta)
