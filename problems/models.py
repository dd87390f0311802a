"""Image classifiers for the CIFAR-10 and digits instances.

Public API (inputs are float images in [0, 1], shape [B, C, H, W]; outputs logits [B, classes])::

    build_model(name, *, activation="relu", normalization="batch", num_classes=10, in_channels=3,
                image_size=32, mean=None, std=None, width=32) -> nn.Module
        name in MODELS (a registry: resnet18, preact_resnet18, small_cnn)
        activation in ACTIVATIONS = ("relu", "celu", "silu", "gelu", "softplus")
        normalization in NORMALIZATIONS = ("batch", "group", "none")
    ResNet18(...), PreActResNet18(...), SmallCNN(...)   (same keyword options)
    InputNormalization(mean, std)                       ((x - mean) / std, per channel, buffers)
    make_activation(name) -> nn.Module; make_norm(name, channels) -> nn.Module

Every model starts with :class:`InputNormalization` (CIFAR-10 statistics by default for
3-channel inputs, identity otherwise), so it takes raw [0, 1] pixels.
``normalization="group"`` uses GroupNorm with min(32, channels) groups (the largest divisor of
``channels`` not above 32); ``normalization="none"`` uses Identity and gives the convolutions a
bias. Activations are never in-place and forward passes have no data-dependent control flow, so
with ``normalization`` in {"group", "none"} the models work under ``torch.func.functional_call``
and ``torch.func.vmap``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from minimax.registry import Registry

from .data.cifar10_files import CIFAR10_MEAN, CIFAR10_STD

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "NORMALIZATIONS",
    "BasicBlock",
    "InputNormalization",
    "PreActBlock",
    "PreActResNet18",
    "ResNet18",
    "SmallCNN",
    "build_model",
    "make_activation",
    "make_norm",
]

ACTIVATIONS: tuple[str, ...] = ("relu", "celu", "silu", "gelu", "softplus")
NORMALIZATIONS: tuple[str, ...] = ("batch", "group", "none")


def _check(kind: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(choices)}")


def make_activation(name: str) -> nn.Module:
    """A fresh, non-in-place activation module: one of :data:`ACTIVATIONS`."""
    _check("activation", name, ACTIVATIONS)
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "celu":
        return nn.CELU(inplace=False)
    if name == "silu":
        return nn.SiLU(inplace=False)
    if name == "gelu":
        return nn.GELU()
    return nn.Softplus()


def _num_groups(channels: int, max_groups: int = 32) -> int:
    return max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)


def make_norm(name: str, channels: int) -> nn.Module:
    """BatchNorm2d, GroupNorm (min(32, channels) groups, dividing ``channels``) or Identity."""
    _check("normalization", name, NORMALIZATIONS)
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(_num_groups(channels), channels)
    return nn.Identity()


class InputNormalization(nn.Module):
    """``(x - mean) / std`` per channel; ``mean``/``std`` are buffers of shape [C, 1, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32)[:, None, None])
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32)[:, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def _input_stats(
    in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[Sequence[float], Sequence[float]]:
    """Default statistics: CIFAR-10's for 3 channels, identity (0, 1) otherwise."""
    if mean is None:
        mean = CIFAR10_MEAN if in_channels == 3 else (0.0,) * in_channels
    if std is None:
        std = CIFAR10_STD if in_channels == 3 else (1.0,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(
            f"mean/std need {in_channels} values (one per input channel), "
            f"got {len(mean)} and {len(std)}"
        )
    return mean, std


def _conv3x3(cin: int, cout: int, stride: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class BasicBlock(nn.Module):
    """ResNet basic block: conv-norm-act-conv-norm plus (projected) shortcut, then act."""

    def __init__(
        self, cin: int, cout: int, stride: int, activation: str, normalization: str
    ) -> None:
        super().__init__()
        bias = normalization == "none"
        self.conv1 = _conv3x3(cin, cout, stride, bias)
        self.norm1 = make_norm(normalization, cout)
        self.act1 = make_activation(activation)
        self.conv2 = _conv3x3(cout, cout, 1, bias)
        self.norm2 = make_norm(normalization, cout)
        self.act2 = make_activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=bias), make_norm(normalization, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation block: norm-act-conv-norm-act-conv plus shortcut (from the activated input
    when projected, as in He et al. 2016)."""

    def __init__(
        self, cin: int, cout: int, stride: int, activation: str, normalization: str
    ) -> None:
        super().__init__()
        bias = normalization == "none"
        self.norm1 = make_norm(normalization, cin)
        self.act1 = make_activation(activation)
        self.conv1 = _conv3x3(cin, cout, stride, bias)
        self.norm2 = make_norm(normalization, cout)
        self.act2 = make_activation(activation)
        self.conv2 = _conv3x3(cout, cout, 1, bias)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.norm2(out)))
        return out + shortcut


_WIDTHS = (64, 128, 256, 512)
_STRIDES = (1, 2, 2, 2)


class _ResNetBase(nn.Module):
    """The shared ResNet-18 body: input normalization, 3x3 stem conv, four stages of two
    ``block``s (widths 64-512), global average pool and a linear head."""

    block: type[BasicBlock] | type[PreActBlock]

    def __init__(
        self,
        *,
        activation: str = "relu",
        normalization: str = "batch",
        num_classes: int = 10,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check("activation", activation, ACTIVATIONS)
        _check("normalization", normalization, NORMALIZATIONS)
        self.normalize = InputNormalization(*_input_stats(in_channels, mean, std))
        self.stem = _conv3x3(in_channels, 64, 1, bias=normalization == "none")
        layers: list[nn.Module] = []
        cin = 64
        for cout, stride in zip(_WIDTHS, _STRIDES, strict=True):
            layers.append(
                nn.Sequential(
                    self.block(cin, cout, stride, activation, normalization),
                    self.block(cout, cout, 1, activation, normalization),
                )
            )
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, num_classes)
        self._add_layers(activation, normalization)

    def _add_layers(self, activation: str, normalization: str) -> None:
        """The variant's own norm + activation (created last: parameter order is stable)."""
        raise NotImplementedError

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(-2, -1)))  # global average pool -> [B, 512]


class ResNet18(_ResNetBase):
    """CIFAR ResNet-18: 3x3 stem conv (no max-pool), BasicBlock x [2, 2, 2, 2], widths
    64-512, global average pool, linear. [B, C, H, W] in [0, 1] -> logits [B, num_classes]."""

    block = BasicBlock

    def _add_layers(self, activation: str, normalization: str) -> None:
        self.stem_norm = make_norm(normalization, 64)
        self.stem_act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem_act(self.stem_norm(self.stem(self.normalize(x))))
        return self._head(self._features(out))


class PreActResNet18(_ResNetBase):
    """PreActResNet-18 (He et al. 2016, CIFAR variant): 3x3 stem conv, PreActBlock x
    [2, 2, 2, 2], final norm + act, global average pool, linear. [B, C, H, W] -> [B, classes]."""

    block = PreActBlock

    def _add_layers(self, activation: str, normalization: str) -> None:
        self.final_norm = make_norm(normalization, 512)
        self.final_act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._features(self.stem(self.normalize(x)))
        return self._head(self.final_act(self.final_norm(out)))


class SmallCNN(nn.Module):
    """A CPU-friendly CNN: conv(width) - norm - act - pool - conv(2 width) - norm - act - pool -
    fc(hidden) - act - fc(num_classes).

    [B, in_channels, image_size, image_size] in [0, 1] -> logits [B, num_classes]. With the
    defaults (32x32 RGB, width 32) it has about 0.55 M parameters; ``in_channels=1,
    image_size=8`` fits the 8x8 digits images. ``image_size`` must be at least 4.
    """

    def __init__(
        self,
        *,
        activation: str = "relu",
        normalization: str = "batch",
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        width: int = 32,
        hidden: int = 128,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check("activation", activation, ACTIVATIONS)
        _check("normalization", normalization, NORMALIZATIONS)
        if image_size < 4:
            raise ValueError(f"image_size must be at least 4 (two 2x2 poolings), got {image_size}")
        bias = normalization == "none"
        self.normalize = InputNormalization(*_input_stats(in_channels, mean, std))
        self.features = nn.Sequential(
            _conv3x3(in_channels, width, 1, bias),
            make_norm(normalization, width),
            make_activation(activation),
            nn.MaxPool2d(2),
            _conv3x3(width, 2 * width, 1, bias),
            make_norm(normalization, 2 * width),
            make_activation(activation),
            nn.MaxPool2d(2),
        )
        side = image_size // 2 // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * side * side, hidden),
            make_activation(activation),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


#: name → builder ``(*, activation, normalization, num_classes, in_channels, image_size, mean, std,
#: width) -> nn.Module``; the CLI's ``--model`` choices. To add a model, register a builder.
MODELS: Registry[nn.Module] = Registry("model")


@MODELS.register("resnet18")
def _resnet18(*, image_size: int = 32, width: int = 32, **common: Any) -> nn.Module:
    """CIFAR ResNet-18 (BasicBlock, 11 M parameters)"""
    del image_size, width  # the ResNets pool globally and have fixed widths
    return ResNet18(**common)


@MODELS.register("preact_resnet18")
def _preact_resnet18(*, image_size: int = 32, width: int = 32, **common: Any) -> nn.Module:
    """PreActResNet-18 (Rice et al. 2020's CIFAR-10 model)"""
    del image_size, width
    return PreActResNet18(**common)


@MODELS.register("small_cnn")
def _small_cnn(**options: Any) -> nn.Module:
    """a two-conv CNN for CPUs and small images (e.g. the 8x8 digits)"""
    return SmallCNN(**options)


def build_model(
    name: str,
    *,
    activation: str = "relu",
    normalization: str = "batch",
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    width: int = 32,
) -> nn.Module:
    """Build one of :data:`MODELS` taking [B, in_channels, image_size, image_size] images in
    [0, 1] to logits [B, num_classes].

    ``mean``/``std`` (one value per channel) set the in-model input normalization; by default
    CIFAR-10's for 3 channels, identity otherwise. ``image_size`` and ``width`` matter only for
    ``small_cnn`` (the ResNets pool globally). Unknown names raise ValueError listing the choices.
    """
    builder = MODELS.get(name)
    _check("activation", activation, ACTIVATIONS)
    _check("normalization", normalization, NORMALIZATIONS)
    return builder(
        activation=activation,
        normalization=normalization,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        width=width,
    )
