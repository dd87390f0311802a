"""The layerwise per-example Gramian and the weighted-backward direction against the materialized
reference (per-example gradients), per layer type and on small CNN / narrow ResNet models."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import minimax as mm
from minimax.engine.gramian import Plan, check_direction, per_example_gram, weighted_gradient
from problems.models import BasicBlock, build_model

DT = torch.float64


class MeanOver(nn.Module):
    """Mean over the given axes (no parameters)."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dims)


class TokenNet(nn.Module):
    """Embedding of the rounded inputs (ids; no gradient to δ) plus a δ-dependent path."""

    def __init__(self, vocab: int, dim: int, classes: int, padding_idx: int | None) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=padding_idx)
        self.mix = nn.Linear(1, dim)
        self.out = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.detach().round().long()
        h = self.emb(ids) + self.mix(x.unsqueeze(-1))
        return self.out(torch.celu(h).mean(1))


def _problem(model: nn.Module) -> mm.ModuleProblem:
    return mm.ModuleProblem(model.to(DT), perturbation=mm.LinfBall(0.1))


def _deltas(m: int, x: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * (2 * torch.rand(m, *x.shape, generator=g, dtype=DT) - 1)


def _assert_gram_matches(problem, batch, deltas, mask=None, plans=None) -> None:
    params = problem.parameters()
    ref = per_example_gram(problem, params, batch, deltas, mask, "materialized")
    for plan in plans or [Plan(), Plan("ghost"), Plan("materialized"), Plan(budget=3000)]:
        got = per_example_gram(problem, params, batch, deltas, mask, "layerwise", plan=plan)
        scale = ref.abs().max().clamp_min(1e-300)
        assert float((got - ref).abs().max() / scale) < 1e-10, plan


def _assert_direction_matches(problem, batch, deltas, seed: int) -> None:
    params = problem.parameters()
    m, b = deltas.shape[:2]
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(m, b, generator=g, dtype=DT) * (torch.rand(m, b, generator=g) < 0.7)
    grads = mm.linalg.per_example_gradients(problem, params, batch, deltas)
    for chunk in (None, 1):
        d = weighted_gradient(problem, params, batch, deltas, w, chunk=chunk)
        for k, v in grads.items():
            ref = torch.einsum("ib,ib...->...", w, v)
            torch.testing.assert_close(d[k], ref, rtol=1e-10, atol=1e-12)


def _image_batch(b: int, c: int, side: int, seed: int, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, side, side, generator=g, dtype=DT), torch.randint(
        0, classes, (b,), generator=g
    )


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=8)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    cin=st.sampled_from([1, 2, 4]),
    k=st.sampled_from([1, 2, 3]),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    padding=st.sampled_from([0, 1, "same"]),
    mode=st.sampled_from(["zeros", "reflect", "circular"]),
    groups=st.sampled_from([1, 2]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_conv2d_gram_and_direction(
    b, m, cin, k, stride, dilation, padding, mode, groups, bias, seed
):
    if padding == "same":
        stride = 1
    groups = groups if cin % groups == 0 else 1
    torch.manual_seed(seed)
    conv = nn.Conv2d(cin, 2 * groups, k, stride, padding, dilation, groups, bias, mode)
    model = nn.Sequential(conv, nn.CELU(), MeanOver(2, 3), nn.Linear(2 * groups, 3))
    problem = _problem(model)
    x, y = _image_batch(b, cin, 6, seed)
    deltas = _deltas(m, x, seed)
    _assert_gram_matches(problem, (x, y), deltas)
    _assert_direction_matches(problem, (x, y), deltas, seed)


@settings(max_examples=8)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    t=st.integers(1, 4),
    d=st.integers(1, 5),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_and_layer_norm_with_a_sequence_axis(b, m, t, d, bias, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(d, 4, bias=bias),
        nn.LayerNorm(4),
        nn.CELU(),
        nn.Linear(4, 3),
        MeanOver(1),
    )
    problem = _problem(model)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(b, t, d, generator=g, dtype=DT), torch.randint(0, 3, (b,), generator=g)
    deltas = _deltas(m, x, seed)
    mask = torch.rand(b, m, generator=g) < 0.7
    mask[:, 0] = True
    _assert_gram_matches(problem, (x, y), deltas, mask)
    _assert_direction_matches(problem, (x, y), deltas, seed)


@settings(max_examples=6)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_norm_layers(b, m, groups, seed):
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.GroupNorm(groups, 4),
        nn.CELU(),
        bn,
        nn.LayerNorm([4, 5, 5]),
        MeanOver(2, 3),
        nn.Linear(4, 3),
    ).eval()
    with torch.no_grad():  # non-trivial affine parameters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    problem = _problem(model)
    x, y = _image_batch(b, 2, 5, seed)
    deltas = _deltas(m, x, seed)
    _assert_gram_matches(problem, (x, y), deltas)
    _assert_direction_matches(problem, (x, y), deltas, seed)


@settings(max_examples=6)
@given(
    b=st.integers(1, 3),
    m=st.integers(1, 3),
    t=st.integers(1, 4),
    padding=st.sampled_from([None, 0]),
    seed=st.integers(0, 2**16),
)
def test_embedding_without_gradient_to_delta(b, m, t, padding, seed):
    torch.manual_seed(seed)
    problem = _problem(TokenNet(5, 3, 3, padding))
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 5, (b, t), generator=g).to(DT)
    y = torch.randint(0, 3, (b,), generator=g)
    deltas = _deltas(m, x, seed)
    _assert_gram_matches(problem, (x, y), deltas)
    _assert_direction_matches(problem, (x, y), deltas, seed)


class NarrowResNet(nn.Module):
    """Stem + two of the project's BasicBlocks (one projected, strided), GroupNorm and CELU."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(2, 4)
        self.act = nn.CELU()
        self.blocks = nn.Sequential(
            BasicBlock(4, 4, 1, "celu", "group"), BasicBlock(4, 8, 2, "celu", "group")
        )
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.act(self.norm(self.stem(x))))
        return self.fc(out.mean((-2, -1)))


@pytest.mark.parametrize("name", ["small_cnn", "narrow_resnet"])
def test_models_gram_direction_and_certificate(name):
    torch.manual_seed(0)
    if name == "small_cnn":
        model = build_model(
            "small_cnn",
            normalization="group",
            activation="celu",
            width=4,
            image_size=8,
            num_classes=3,
        )
    else:
        model = NarrowResNet()
    problem = _problem(model)
    x, y = _image_batch(3, 3, 8, 1)
    deltas = _deltas(3, x, 2)
    _assert_gram_matches(problem, (x, y), deltas, plans=[Plan(), Plan("ghost")])
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


def test_float32_models_get_float32_products_and_a_float64_sum():
    """A float32 model's products are formed in float32 (its gradients carry float32 rounding
    anyway) and summed in float64: K stays within float32 rounding of the float64 Gramian of the
    same model, on every plan, and DDi's certificate still holds up to that rounding."""
    torch.manual_seed(0)
    model = build_model(
        "small_cnn", normalization="group", activation="celu", width=8, image_size=8, num_classes=3
    )
    x64, y = _image_batch(4, 3, 8, 1)
    d64 = _deltas(3, x64, 2)
    double = _problem(model)  # the model in float64 (cast in place)
    exact = per_example_gram(double, double.parameters(), (x64, y), d64, None, "materialized")
    single = mm.ModuleProblem(model.float(), perturbation=mm.LinfBall(0.1))  # back to float32
    x, deltas = x64.float(), d64.float()
    scale = float(exact.abs().max())
    for plan in [Plan(), Plan("ghost"), Plan("materialized"), Plan(budget=3000)]:
        got = per_example_gram(
            single, single.parameters(), (x, y), deltas, None, "layerwise", plan=plan
        )
        assert got.dtype == torch.float64
        err = float((got - exact).abs().max()) / scale
        assert 0 < err < 1e-5, (plan, err)  # float32 rounding: not exact, and not worse
    cands = mm.PGD(2, 0.05, restarts=3, seed=0)(single, single.parameters(), (x, y))
    for per_example in (True, False):
        out = mm.DDi(per_example=per_example)(
            mm.Engine(single, gramian="layerwise"), single.parameters(), (x, y), cands
        )
        norm2 = float(out.norm) ** 2
        assert float(out.certificate) <= -norm2 + 1e-4 * max(norm2, 1e-30)


def test_reduced_float32_matmul_precision_falls_back_to_float64_products():
    """With TF32 / bf16 matmuls allowed, float32 products would lose 13+ bits: then the layer
    products are formed in float64 (and back to float32 at "highest")."""
    from minimax.engine.gramian.blocks import work_dtype

    x = torch.ones(2, 2)
    saved = torch.get_float32_matmul_precision()
    try:
        assert work_dtype(x) == torch.float32
        torch.set_float32_matmul_precision("high")
        assert work_dtype(x) == torch.float64
    finally:
        torch.set_float32_matmul_precision(saved)
    assert work_dtype(x) == torch.float32 and work_dtype(x.double()) == torch.float64


def test_tolerance_drops_rows_and_auto_picks_layerwise():
    torch.manual_seed(0)
    problem = _problem(nn.Sequential(nn.Linear(3, 4), nn.CELU(), nn.Linear(4, 2)))
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
def test_refusals_name_the_module():
    prelu = _problem(nn.Sequential(nn.Linear(3, 4), nn.PReLU(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"PReLU has no layer rule.*gramian='materialized'"):
        _direction(prelu, mm.DDi(per_example=True), gramian="layerwise")
    auto = _direction(prelu, mm.DDi(per_example=True))  # falls back to the reference
    assert float(auto.certificate) <= -(float(auto.norm) ** 2) + 1e-9
    with pytest.raises(ValueError, match="ran twice"):
        _direction(_problem(Shared()), mm.DDi(per_example=True), gramian="layerwise")
    tied = nn.Sequential(nn.Linear(3, 3), nn.CELU(), nn.Linear(3, 3))
    tied[2].weight = tied[0].weight
    with pytest.raises(ValueError, match="shared by modules"):
        _direction(_problem(tied), mm.DDi(per_example=True), gramian="layerwise")
    with pytest.raises(RuntimeError, match="αᵀKα"):
        _direction(_problem(Outside()), mm.DDi(per_example=True), gramian="layerwise")
    with pytest.raises(ValueError, match="gramian must be one of"):
        mm.Engine(_problem(Outside()), gramian="ghost")


def test_batchnorm_in_train_mode_is_refused():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(DT).train()
    problem = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1))
    with pytest.raises(ValueError, match="coupled"):
        _direction(problem, mm.DDi(per_example=True), gramian="layerwise")
    x, y = torch.randn(4, 3, dtype=DT), torch.randint(0, 2, (4,))
    with pytest.raises(ValueError, match="batch statistics"):  # direct call, no problem check
        per_example_gram(problem, problem.parameters(), (x, y), _deltas(2, x, 0), None, "layerwise")
    ev = mm.ModuleProblem(net, perturbation=mm.LinfBall(0.1), batchnorm="eval")
    new = _direction(ev, mm.DDi(per_example=True), gramian="layerwise")
    assert float(new.certificate) <= -(float(new.norm) ** 2) + 1e-9


def test_function_problem_uses_the_reference():
    problem = mm.FunctionProblem(
        lambda p, d, b: (p["w"] * (b + d)).sum(-1) ** 2,
        {"w": torch.randn(3, dtype=DT)},
        mm.LinfBall(0.1),
        event_shape=(3,),
    )
    batch = torch.randn(4, 3, dtype=DT)
    deltas = _deltas(2, batch, 0)
    with pytest.raises(TypeError, match="ModuleProblem"):
        per_example_gram(problem, problem.parameters(), batch, deltas, None, "layerwise")
    k = per_example_gram(problem, problem.parameters(), batch, deltas)
    assert k.shape == (8, 8)
    _assert_direction_matches(problem, batch, deltas, 0)


def test_check_direction_accepts_agreement_and_rejects_mismatch():
    k = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=DT)
    alpha = torch.tensor([0.5, 0.5], dtype=DT)
    check_direction(k, alpha, {"w": torch.tensor([1.0, 0.0], dtype=DT)}, "t")
    with pytest.raises(RuntimeError, match="αᵀKα"):
        check_direction(k, alpha, {"w": torch.tensor([2.0, 0.0], dtype=DT)}, "t")


def test_layerwise_batch_level_is_refused_under_several_ranks():
    class TwoRanks(mm.distributed.Communicator):
        world_size = 2  # the rule refuses before any collective

    problem = _problem(nn.Sequential(nn.Linear(3, 4), nn.CELU(), nn.Linear(4, 2)))
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
