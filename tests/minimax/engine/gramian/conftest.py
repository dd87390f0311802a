"""Fixtures of the Gramian tests: float64 problems, candidate deltas, the two checks against the
materialized reference, and two small image models (all session-scoped builders).

- ``module_problem(model) -> ModuleProblem``: the model cast to float64 in place, under an L∞ ball
  of radius 0.1;
- ``random_deltas(m, x, seed) -> [m, *x.shape]``: uniform in [−0.1, 0.1], float64;
- ``image_batch(b, c, side, seed, classes=3) -> (x [b, c, side, side], y [b])``, float64 images;
- ``assert_gram_matches(problem, batch, deltas, mask=None, plans=None)``: the layerwise per-example
  Gramian under each `Plan` equals the materialized one to 1e-10 (relative to its largest entry);
- ``assert_direction_matches(problem, batch, deltas, seed)``: `weighted_gradient` with random
  weights [m, B] (whole and one candidate at a time) equals Σ α_{i,b} ∇θ g(θ, δ_{i,b}; x_b) / B;
- ``small_cnn(width, num_classes=3, image_size=8) -> SmallCNN`` and ``narrow_resnet() ->
  NarrowResNet``: CNNs on 3-channel images with GroupNorm and CELU (weights from torch's global
  RNG).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import minimax as mm
from minimax.engine.gramian import Plan, per_example_gram, weighted_gradient

DT = torch.float64

# ------------------------------------------------------------------------------------------------
# Problems, deltas and the two checks
# ------------------------------------------------------------------------------------------------


def _problem(model: nn.Module) -> mm.ModuleProblem:
    return mm.ModuleProblem(model.to(DT), perturbation=mm.LinfBall(0.1))


def _deltas(m: int, x: Tensor, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * (2 * torch.rand(m, *x.shape, generator=g, dtype=DT) - 1)


def _image_batch(b: int, c: int, side: int, seed: int, classes: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, side, side, generator=g, dtype=DT), torch.randint(
        0, classes, (b,), generator=g
    )


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


@pytest.fixture(scope="session")
def module_problem() -> Callable[[nn.Module], mm.ModuleProblem]:
    return _problem


@pytest.fixture(scope="session")
def random_deltas() -> Callable[[int, Tensor, int], Tensor]:
    return _deltas


@pytest.fixture(scope="session")
def image_batch() -> Callable[..., tuple[Tensor, Tensor]]:
    return _image_batch


@pytest.fixture(scope="session")
def assert_gram_matches() -> Callable[..., None]:
    return _assert_gram_matches


@pytest.fixture(scope="session")
def assert_direction_matches() -> Callable[..., None]:
    return _assert_direction_matches


# ------------------------------------------------------------------------------------------------
# Two small image models with GroupNorm and CELU
# ------------------------------------------------------------------------------------------------

#: per-channel input statistics of CIFAR-10 images (an in-model normalization, as image models use)
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the most groups (at most 32) that divide ``channels``."""
    groups = max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class Normalize(nn.Module):
    """(x − mean) / std per channel of x [B, 3, H, W] (buffers, no parameters)."""

    mean: Tensor
    std: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN)[:, None, None])
        self.register_buffer("std", torch.tensor(STD)[:, None, None])

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """normalize - conv(w) - norm - celu - pool - conv(2w) - norm - celu - pool - fc(128) - celu -
    fc(classes): [B, 3, side, side] → [B, classes]."""

    def __init__(self, width: int, num_classes: int = 3, image_size: int = 8) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.features = nn.Sequential(
            _conv3x3(3, width),
            _group_norm(width),
            nn.CELU(),
            nn.MaxPool2d(2),
            _conv3x3(width, 2 * width),
            _group_norm(2 * width),
            nn.CELU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * side * side, 128),
            nn.CELU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(self.normalize(x)))


class ResidualBlock(nn.Module):
    """conv-norm-celu-conv-norm plus a (projected, when the shape changes) shortcut, then celu."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.norm1 = _group_norm(cout)
        self.act1 = nn.CELU()
        self.conv2 = _conv3x3(cout, cout)
        self.norm2 = _group_norm(cout)
        self.act2 = nn.CELU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _group_norm(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class NarrowResNet(nn.Module):
    """Stem + two residual blocks (one projected, strided), GroupNorm and CELU, global mean pool:
    [B, 3, H, W] → [B, 3]."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(2, 4)
        self.act = nn.CELU()
        self.blocks = nn.Sequential(ResidualBlock(4, 4, 1), ResidualBlock(4, 8, 2))
        self.fc = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(self.act(self.norm(self.stem(x))))
        return self.fc(out.mean((-2, -1)))


@pytest.fixture(scope="session")
def small_cnn() -> type[SmallCNN]:
    return SmallCNN


@pytest.fixture(scope="session")
def narrow_resnet() -> type[NarrowResNet]:
    return NarrowResNet
