"""Models for the worst-group instances: plain ``nn.Module``s with seeded initialization and
row-independent layers (no BatchNorm), so a batch's per-example losses depend on their own row
only, as worst-group DDi's per-group gradients need.

Public API (outputs are logits [..., num_classes]; binary tasks use 2 logits and cross
entropy)::

    LogisticModel(in_features, num_classes=2, *, seed=0)
    MLP(in_features, num_classes=2, *, hidden=64, seed=0)        one hidden ReLU layer
    CNN1d(length=40, num_classes=10, *, channels=32, normalization="none", seed=0)
    WORSTGROUP_MODELS: Registry name → builder (logistic, mlp, cnn1d)
    build_worstgroup_model(name, data, *, seed=0, **options) -> nn.Module

``seed`` fixes the initial weights (the global random state is left as it was).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from minimax.registry import Registry

from ..data.groups import WorstGroupData

__all__ = ["MLP", "WORSTGROUP_MODELS", "CNN1d", "LogisticModel", "build_worstgroup_model"]

NORMALIZATIONS: tuple[str, ...] = ("none", "group")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Initialize layers from ``seed`` without touching the caller's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class LogisticModel(nn.Module):
    """Multinomial logistic regression: one linear layer on the flattened features."""

    def __init__(self, in_features: int, num_classes: int = 2, *, seed: int = 0) -> None:
        super().__init__()
        with _seeded(seed):
            self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class MLP(nn.Module):
    """Linear → ReLU → Linear on the last dimension (``hidden`` units)."""

    def __init__(
        self, in_features: int, num_classes: int = 2, *, hidden: int = 64, seed: int = 0
    ) -> None:
        super().__init__()
        with _seeded(seed):
            self.net = nn.Sequential(
                nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CNN1d(nn.Module):
    """A small 1-D CNN for signals [..., length]: three Conv1d + ReLU layers (kernel 5, then two
    of kernel 3 and stride 2, ``channels`` each), then a linear layer on the flattened maps.

    ``normalization="group"`` puts a GroupNorm (4 groups) after each convolution; it normalizes each
    example on its own, unlike BatchNorm. Any leading dimensions are kept."""

    def __init__(
        self,
        length: int = 40,
        num_classes: int = 10,
        *,
        channels: int = 32,
        normalization: str = "none",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {normalization!r}: "
                f"choose one of {', '.join(NORMALIZATIONS)}"
            )
        if normalization == "group" and channels % 4:
            raise ValueError(f"normalization='group' needs channels divisible by 4, got {channels}")
        self.length = length

        def block(c_in: int, kernel: int, stride: int) -> list[nn.Module]:
            conv = nn.Conv1d(c_in, channels, kernel, stride=stride, padding=kernel // 2)
            normalize = nn.GroupNorm(4, channels) if normalization == "group" else nn.Identity()
            return [conv, normalize, nn.ReLU()]

        with _seeded(seed):
            self.features = nn.Sequential(*block(1, 5, 1), *block(channels, 3, 2))
            self.features.extend(block(channels, 3, 2))
            out_length = (length + 1) // 2
            out_length = (out_length + 1) // 2
            self.head = nn.Linear(channels * out_length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        h = self.features(x.reshape(-1, 1, self.length))
        return self.head(h.flatten(1)).reshape(*lead, -1)


WORSTGROUP_MODELS: Registry[nn.Module] = Registry("worst-group model")


@WORSTGROUP_MODELS.register("logistic")
def _logistic(data: WorstGroupData, *, seed: int = 0, **options: Any) -> nn.Module:
    """logistic regression on the features"""
    return LogisticModel(_features(data), data.num_classes, seed=seed, **options)


@WORSTGROUP_MODELS.register("mlp")
def _mlp(data: WorstGroupData, *, seed: int = 0, **options: Any) -> nn.Module:
    """an MLP with one hidden ReLU layer (64 units by default)"""
    return MLP(_features(data), data.num_classes, seed=seed, **options)


@WORSTGROUP_MODELS.register("cnn1d")
def _cnn1d(data: WorstGroupData, *, seed: int = 0, **options: Any) -> nn.Module:
    """a small 1-D CNN for signals (MNIST-1D)"""
    if len(data.input_shape) != 1:
        raise ValueError(f"cnn1d takes 1-D signals, got examples of shape {data.input_shape}")
    return CNN1d(data.input_shape[0], data.num_classes, seed=seed, **options)


def _features(data: WorstGroupData) -> int:
    if len(data.input_shape) != 1:
        raise ValueError(f"expected flat features, got examples of shape {data.input_shape}")
    return data.input_shape[0]


def build_worstgroup_model(
    name: str, data: WorstGroupData, *, seed: int = 0, **options: Any
) -> nn.Module:
    """``WORSTGROUP_MODELS.build(name, data, seed=seed, **options)``: sized for ``data``."""
    builder: Callable[..., nn.Module] = WORSTGROUP_MODELS.get(name)
    return builder(data, seed=seed, **options)
