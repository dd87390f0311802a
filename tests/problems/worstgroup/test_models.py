"""The worst-group models and data registry: shapes, seeded initialization, rows that do not
mix, and batches ready for `minimax.WorstGroupProblem`."""

from __future__ import annotations

import pytest
import torch

import minimax as mm
from minimax_problems.data.groups import WorstGroupData
from minimax_problems.data.worstgroup import WORSTGROUP_DATASETS, load_worstgroup
from minimax_problems.worstgroup.models import (
    WORSTGROUP_MODELS,
    CNN1d,
    LogisticModel,
    build_worstgroup_model,
)


def _data(shape: tuple[int, ...], classes: int, groups: int, n: int = 24) -> WorstGroupData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    group = torch.arange(n) % groups
    names = tuple(f"g{k}" for k in range(groups))
    return WorstGroupData("toy", x, y, group, x, y, group, x, y, group, names, classes)


@pytest.mark.parametrize(
    ("name", "shape", "classes", "options"),
    [
        ("logistic", (107,), 2, {}),
        ("mlp", (107,), 2, {}),
        ("mlp", (40,), 10, {"hidden": 100}),
        ("cnn1d", (40,), 10, {}),
        ("cnn1d", (40,), 10, {"normalization": "group"}),
    ],
)
def test_forward_shapes_seeds_and_worst_group_problem(name, shape, classes, options):
    data = _data(shape, classes, groups=3)
    model = build_worstgroup_model(name, data, seed=3, **options)
    x, y, group = data.train
    assert model(x).shape == (len(y), classes)
    again = build_worstgroup_model(name, data, seed=3, **options)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    other = build_worstgroup_model(name, data, seed=4, **options)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    # no layer mixes rows: an example's output does not depend on the rest of the batch
    torch.testing.assert_close(model(x[:5]), model(x)[:5])
    problem = mm.WorstGroupProblem.from_module(model, data.num_groups)
    losses = problem.group_losses(problem.parameters(), (x, y, group))
    assert losses.shape == (3,) and torch.isfinite(losses).all()


def test_seeded_init_leaves_the_global_random_state_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    LogisticModel(5, seed=0)
    CNN1d(seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_the_registries_name_every_model_and_data_set():
    assert WORSTGROUP_MODELS.names() == ["logistic", "mlp", "cnn1d"]
    assert WORSTGROUP_DATASETS.names() == ["adult", "german", "mnist1d"]
    with pytest.raises(ValueError, match="choose one of adult, german, mnist1d"):
        load_worstgroup("compas")
    with pytest.raises(ValueError, match="1-D signals"):
        build_worstgroup_model("cnn1d", _data((3, 8), 2, 2))


def test_german_from_the_registry_trains_one_worst_group_step():
    data = load_worstgroup("german", seed=0)
    model = build_worstgroup_model("logistic", data, seed=0)
    problem = mm.WorstGroupProblem.from_module(model, data.num_groups)
    losses = problem.group_losses(problem.parameters(), data.train)
    assert losses.shape == (4,) and torch.isfinite(losses).all()
