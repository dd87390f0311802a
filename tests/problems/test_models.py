"""Models: every name / activation / norm builds and trains; functional_call + vmap support."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from minimax_problems.data.cifar10_files import CIFAR10_MEAN, CIFAR10_STD
from minimax_problems.models import (
    ACTIVATIONS,
    MODELS,
    NORMALIZATIONS,
    InputNormalization,
    PreActResNet18,
    ResNet18,
    SmallCNN,
    build_model,
)


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm", NORMALIZATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_builds_forward_backward(name: str, norm: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, normalization=norm)
    out = model(_x(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    has_bias = any(isinstance(m, nn.Conv2d) and m.bias is not None for m in model.modules())
    assert has_bias == (norm == "none")
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    has_gn = any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert (has_bn, has_gn) == (norm == "batch", norm == "group")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_activations(name: str, activation: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, activation=activation, normalization="group").eval()
    out = model(_x(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    kind = {"relu": nn.ReLU, "celu": nn.CELU, "silu": nn.SiLU, "gelu": nn.GELU}.get(
        activation, nn.Softplus
    )
    acts = [m for m in model.modules() if isinstance(m, kind)]
    assert acts and all(not getattr(m, "inplace", False) for m in acts)


def test_resnet_architectures() -> None:
    resnet = build_model("resnet18")
    assert isinstance(resnet, ResNet18)
    assert sum(p.numel() for p in resnet.parameters()) == 11_173_962  # the standard CIFAR one
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet.modules())
    assert resnet.stem.kernel_size == (3, 3) and resnet.stem.stride == (1, 1)
    assert isinstance(build_model("preact_resnet18"), PreActResNet18)
    assert isinstance(build_model("small_cnn"), SmallCNN)


def test_group_norm_groups() -> None:
    model = build_model("resnet18", normalization="group")
    groups = {m.num_channels: m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {64: 32, 128: 32, 256: 32, 512: 32}
    cnn = build_model("small_cnn", normalization="group", width=12)
    groups = {m.num_channels: m.num_groups for m in cnn.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {12: 12, 24: 24}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"name": "vgg"}, ["model", "resnet18", "preact_resnet18", "small_cnn"]),
        ({"name": "resnet18", "activation": "tanh"}, ["activation", "relu", "softplus"]),
        (
            {"name": "small_cnn", "normalization": "layer"},
            ["normalization", "batch", "group", "none"],
        ),
    ],
)
def test_unknown_names_raise(kwargs: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        build_model(**kwargs)  # type: ignore[arg-type]
    assert all(word in str(info.value) for word in words)


def test_input_normalization() -> None:
    model = build_model("small_cnn")
    assert isinstance(model.normalize, InputNormalization)
    buffers = dict(model.named_buffers())
    assert torch.allclose(buffers["normalize.mean"].flatten(), torch.tensor(CIFAR10_MEAN))
    assert torch.allclose(buffers["normalize.std"].flatten(), torch.tensor(CIFAR10_STD))
    x = _x(2, 3, 4, 4)
    norm = InputNormalization((0.5, 0.25, 0.0), (0.5, 2.0, 1.0))
    expected = torch.stack([(x[:, 0] - 0.5) / 0.5, (x[:, 1] - 0.25) / 2.0, x[:, 2]], dim=1)
    assert torch.allclose(norm(x), expected)
    custom = build_model("resnet18", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert torch.equal(dict(custom.named_buffers())["normalize.std"].flatten(), torch.ones(3))
    with pytest.raises(ValueError, match="3 values"):
        build_model("small_cnn", mean=(0.5,), std=(0.5,))


def test_small_cnn_on_digits() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", in_channels=1, image_size=8, normalization="none", width=8)
    assert torch.equal(
        dict(model.named_buffers())["normalize.mean"].flatten(), torch.zeros(1)
    )  # identity by default
    out = model(_x(5, 1, 8, 8))
    assert out.shape == (5, 10)
    out.sum().backward()
    m2 = build_model(
        "small_cnn", in_channels=1, image_size=8, num_classes=4, mean=(0.5,), std=(0.2,)
    )
    assert m2(_x(3, 1, 8, 8)).shape == (3, 4)


def test_small_cnn_learns_quickly() -> None:
    """A few full-batch steps fit a tiny separable problem (colour decides the class)."""
    torch.manual_seed(0)
    y = torch.arange(20) % 2
    x = (
        _x(20, 3, 16, 16) * 0.2
        + y.float()[:, None, None, None] * torch.tensor([0.6, 0, 0])[:, None, None]
    )
    model = build_model("small_cnn", image_size=16, width=8, normalization="group")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert (model(x).argmax(1) == y).all()


@pytest.mark.parametrize("norm", ["group", "none"])
@pytest.mark.parametrize("name", MODELS)
def test_functional_call_vmap_matches_loop(name: str, norm: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, normalization=norm, activation="silu").eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    x = _x(3, 2, 3, 32, 32)  # an extra leading dim of 3 (e.g. candidates / restarts)

    def f(xx: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (params, buffers), (xx,))

    batched = vmap(f)(x)
    looped = torch.stack([model(xx) for xx in x])
    assert batched.shape == (3, 2, 10)
    torch.testing.assert_close(batched, looped, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["group", "none"])
def test_per_candidate_parameter_gradients_with_vmap(norm: str) -> None:
    """vmap(grad(functional_call)) over candidates equals one backward per candidate."""
    torch.manual_seed(0)
    model = build_model("small_cnn", normalization=norm, width=8, image_size=16, activation="gelu")
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = _x(4, 3, 3, 16, 16)
    y = torch.tensor([0, 3, 7])

    def loss(p: dict[str, torch.Tensor], xx: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (xx,)), y)

    per_candidate = vmap(grad(loss), in_dims=(None, 0))(params, x)
    for i in range(4):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(per_candidate[name][i], p.grad, rtol=1e-4, atol=1e-6)


def test_vmap_over_parameters() -> None:
    """Stacked parameter sets (e.g. per-restart copies) also vmap."""
    torch.manual_seed(0)
    model = build_model("small_cnn", normalization="group", width=8, image_size=8, in_channels=1)
    stacked = {k: torch.stack([v.detach(), 2 * v.detach()]) for k, v in model.named_parameters()}
    x = _x(2, 1, 8, 8)
    out = vmap(lambda p: functional_call(model, p, (x,)))(stacked)
    assert out.shape == (2, 2, 10)
    torch.testing.assert_close(out[0], model(x))
