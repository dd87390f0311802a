"""Fixtures shared by the tests of `problems`: tiny CIFAR-shaped data and one reference run
(trained once per session: the training, evaluation and report tests read it)."""

from __future__ import annotations

import pytest
import torch

from minimax_problems.models import build_model
from minimax_problems.training import RunHistory, TrainConfig, train

N_TRAIN, N_VAL = 64, 32

#: the reference run's config (64 images / 24 = 3 steps per epoch, last one short)
CONFIG = dict(
    rule="ddi", restarts=2, epochs=2, batch_size=24, steps=2, eval_steps=2, remeasure=True
)


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", width=8)  # BatchNorm: running statistics are checkpointed


@pytest.fixture(scope="session")
def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Tiny CIFAR-shaped data: uint8 images [N, 3, 32, 32] with a learnable colour signal."""
    g = torch.Generator().manual_seed(0)
    n = N_TRAIN + N_VAL
    y = torch.arange(n) % 10
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.5 + (y.float() / 20)[:, None, None, None]
    x = (x * 255).round().clamp(0, 255).to(torch.uint8)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


@pytest.fixture(scope="session")
def reference(data, tmp_path_factory) -> tuple[torch.nn.Module, RunHistory]:
    """An uninterrupted run."""
    model = small_model()
    out = tmp_path_factory.mktemp("reference")
    history = train(model, data[0], data[1], TrainConfig(**CONFIG), out, progress=False)
    return model, history


@pytest.fixture
def make_model():
    """The reference run's model builder (seeded: every call builds the same weights)."""
    return small_model


@pytest.fixture
def reference_config() -> dict:
    """The reference run's `TrainConfig` fields."""
    return dict(CONFIG)
