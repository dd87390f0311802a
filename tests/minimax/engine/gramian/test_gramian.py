"""The per-example Gramian's entry points (`per_example_gram`, `weighted_gradient`, the layerwise
or materialized choice) against the materialized reference on small CNN / narrow ResNet models,
and their refusals (no layer rule, shared or outside parameters, batch statistics, ranks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import minimax as mm
from minimax.engine.gramian import Plan, check_direction, per_example_gram

DT = torch.float64


@pytest.mark.parametrize("name", ["small_cnn", "narrow_resnet"])
def test_models_gram_direction_and_certificate(
    small_cnn, module_problem, random_deltas, image_batch, assert_gram_matches, narrow_resnet, name
):
    torch.manual_seed(0)
    if name == "small_cnn":
        model = small_cnn(4)
    else:
        model = narrow_resnet()
    problem = module_problem(model)
    x, y = image_batch(3, 3, 8, 1)
    deltas = random_deltas(3, x, 2)
    assert_gram_matches(problem, (x, y), deltas, plans=[Plan(), Plan("ghost")])
    inner = mm.PGD(2, 0.05, restarts=3, seed=0)
    cands = inner(problem, problem.parameters(), (x, y))
    for per_example in (True, False):
        new = mm.DDi(per_example=per_example)(
            mm.Engine(problem, gramian="layerwise"), problem.parameters(), (x, y), cands
        )
        ref = mm.DDi(per_example=per_example)(
            mm.Engine(problem, gramian="materialized"), problem.parameters(), (x, y), cands
        )
        torch.testing.assert_close(new.extras["gram"], ref.extras["gram"], rtol=1e-10, atol=0)
        torch.testing.assert_close(new.weights, ref.weights, rtol=1e-7, atol=1e-9)
        for k in ref.vector:
            torch.testing.assert_close(new.vector[k], ref.vector[k], rtol=1e-7, atol=1e-12)
        assert float(new.certificate) <= -(float(new.norm) ** 2) + 1e-9
        assert float(new.certificate) == pytest.approx(float(ref.certificate), rel=1e-7)


def test_tolerance_drops_rows_and_auto_picks_layerwise(module_problem):
    torch.manual_seed(0)
    problem = module_problem(nn.Sequential(nn.Linear(3, 4), nn.CELU(), nn.Linear(4, 2)))
    x, y = torch.randn(5, 3, dtype=DT), torch.randint(0, 2, (5,))
    cands = mm.PGD(2, 0.05, restarts=4, seed=0)(problem, problem.parameters(), (x, y))
    before = mm.extend.engine_of(problem).passes.snapshot()
    auto = mm.DDi(per_example=True, tolerance=0.05)(problem, problem.parameters(), (x, y), cands)
    used = mm.extend.engine_of(problem).passes.backward - before[1]
    assert used < 4 * 5  # the materialized path would count m·B backward passes
    ref = mm.DDi(per_example=True, tolerance=0.05)(
        mm.Engine(problem, gramian="materialized"), problem.parameters(), (x, y), cands
    )
    torch.testing.assert_close(auto.extras["gram"], ref.extras["gram"], rtol=1e-10, atol=0)
    torch.testing.assert_close(auto.weights, ref.weights, rtol=1e-7, atol=1e-9)
    assert float(auto.certificate) <= -(float(auto.norm) ** 2) + 1e-9


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lin(torch.celu(self.lin(x))))


class Outside(nn.Module):
    """Uses a child's weight outside the child's forward: only the backstop can see it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + x[:, :2] * self.lin.weight[:, 0]


def _direction(problem, rule, communicator=None, **options):
    """The rule's direction at PGD candidates, with an engine of these options."""
    if communicator is not None:
        options["communicator"] = communicator
    engine = mm.Engine(problem, **options)
    x, y = torch.randn(4, 3, dtype=DT), torch.randint(0, 2, (4,))
    cands = mm.PGD(1, 0.05, restarts=2, seed=0)(engine, problem.parameters(), (x, y))
    return rule(engine, problem.parameters(), (x, y), cands)


@pytest.mark.filterwarnings("ignore:per_example_gradients. torch.func.vmap failed")  # PReLU
def test_refusals_name_the_module(module_problem):
    prelu = module_problem(nn.Sequential(nn.Linear(3, 4), nn.PReLU(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"PReLU has no layer rule.*gramian='materialized'"):
        _direction(prelu, mm.DDi(per_example=True), gramian="layerwise")
    auto = _direction(prelu, mm.DDi(per_example=True))  # falls back to the reference
    assert float(auto.certificate) <= -(float(auto.norm) ** 2) + 1e-9
    with pytest.raises(ValueError, match="ran twice"):
        _direction(module_problem(Shared()), mm.DDi(per_example=True), gramian="layerwise")
    tied = nn.Sequential(nn.Linear(3, 3), nn.CELU(), nn.Linear(3, 3))
    tied[2].weight = tied[0].weight
    with pytest.raises(ValueError, match="shared by modules"):
        _direction(module_problem(tied), mm.DDi(per_example=True), gramian="layerwise")
    with pytest.raises(RuntimeError, match="αᵀKα"):
        _direction(module_problem(Outside()), mm.DDi(per_example=True), gramian="layerwise")
    with pytest.raises(ValueError, match="gramian must be one of"):
        mm.Engine(module_problem(Outside()), gramian="ghost")


def test_batchnorm_in_train_mode_is_refused(random_deltas):
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(DT).train()
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    with pytest.raises(ValueError, match="coupled"):
        _direction(problem, mm.DDi(per_example=True), gramian="layerwise")
    x, y = torch.randn(4, 3, dtype=DT), torch.randint(0, 2, (4,))
    with pytest.raises(ValueError, match="batch statistics"):  # direct call, no problem check
        per_example_gram(
            problem, problem.parameters(), (x, y), random_deltas(2, x, 0), None, "layerwise"
        )
    ev = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), batchnorm="eval")
    new = _direction(ev, mm.DDi(per_example=True), gramian="layerwise")
    assert float(new.certificate) <= -(float(new.norm) ** 2) + 1e-9


def test_function_problem_uses_the_reference(random_deltas, assert_direction_matches):
    problem = mm.FunctionProblem(
        lambda p, d, b: (p["w"] * (b + d)).sum(-1) ** 2,
        {"w": torch.randn(3, dtype=DT)},
        mm.LinfBall(0.1),
        event_shape=(3,),
    )
    batch = torch.randn(4, 3, dtype=DT)
    deltas = random_deltas(2, batch, 0)
    with pytest.raises(TypeError, match="ModuleProblem"):
        per_example_gram(problem, problem.parameters(), batch, deltas, None, "layerwise")
    k = per_example_gram(problem, problem.parameters(), batch, deltas)
    assert k.shape == (8, 8)
    assert_direction_matches(problem, batch, deltas, 0)


def test_check_direction_accepts_agreement_and_rejects_mismatch():
    k = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=DT)
    alpha = torch.tensor([0.5, 0.5], dtype=DT)
    check_direction(k, alpha, {"w": torch.tensor([1.0, 0.0], dtype=DT)}, "t")
    with pytest.raises(RuntimeError, match="αᵀKα"):
        check_direction(k, alpha, {"w": torch.tensor([2.0, 0.0], dtype=DT)}, "t")


def test_layerwise_batch_level_is_refused_under_several_ranks(module_problem):
    class TwoRanks(mm.distributed.Communicator):
        world_size = 2  # the rule refuses before any collective

    problem = module_problem(nn.Sequential(nn.Linear(3, 4), nn.CELU(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"gramian='layerwise'\) is not data-parallel"):
        _direction(problem, mm.DDi(), TwoRanks(), gramian="layerwise")
    auto = _direction(problem, mm.DDi(), TwoRanks())
    assert float(auto.certificate) <= -(float(auto.norm) ** 2) + 1e-9


def test_gram_vectors_take_a_stack_or_gram_and_direction():
    layout = torch.ones(2, dtype=torch.bool)
    k = torch.eye(2, dtype=DT)
    with pytest.raises(ValueError, match="either stack, or gram and direction"):
        mm.extend.GramVectors(None, [2], layout, gram=k)
    with pytest.raises(ValueError, match="either stack, or gram and direction"):
        mm.extend.GramVectors({"w": k}, [2], layout, gram=k, direction=lambda a: {"w": a})
    implicit = mm.extend.GramVectors(None, [2], layout, gram=k, direction=lambda a: {"w": a})
    assert implicit.stack is None
