"""MNIST-1D generated offline: the pinned digest, the split, the refusals naming the pip command,
the atomic cache, and the global random state left alone."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from minimax_problems.data import mnist1d
from minimax_problems.data.groups import SPLITS, group_size_table
from minimax_problems.data.package_files import PackageDataError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One generation per module, kept in a cache folder."""
    directory = tmp_path_factory.mktemp("mnist1d")
    mnist1d.load_mnist1d(0, cache_dir=directory)
    return directory


def test_generated_arrays_match_the_pinned_digest(cache):
    with np.load(cache / mnist1d.CACHE_NAME) as f:
        arrays = {name: f[name] for name in mnist1d.ARRAYS}
    assert mnist1d.mnist1d_digest(arrays) == mnist1d.MNIST1D_SHA256
    assert arrays["x"].shape == (4000, 40) and arrays["x_test"].shape == (1000, 40)
    assert sorted(np.unique(arrays["y"]).tolist()) == list(range(10))


def test_split_and_groups(cache):
    data = mnist1d.load_mnist1d(0, cache_dir=cache)
    assert [len(data.part(s)[1]) for s in SPLITS] == [3601, 399, 1000]
    assert data.num_groups == data.num_classes == 10 and data.input_shape == (40,)
    for split in SPLITS:
        _, y, g = data.part(split)
        assert (y == g).all()
    other = mnist1d.load_mnist1d(1, cache_dir=cache)
    assert (other.x_test == data.x_test).all() and not (other.y_val == data.y_val).all()
    page = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    assert group_size_table(data, positive_rate=False) in page


def test_the_cache_is_used_and_a_corrupt_one_is_replaced(cache, tmp_path, monkeypatch):
    copy = tmp_path / mnist1d.CACHE_NAME
    copy.write_bytes((cache / mnist1d.CACHE_NAME).read_bytes())

    def never():
        raise AssertionError("generated despite a valid cache")

    monkeypatch.setattr(mnist1d, "generate_mnist1d", never)
    assert len(mnist1d.load_mnist1d(0, cache_dir=tmp_path).y_test) == 1000
    copy.write_bytes(b"not an npz file")
    with np.load(cache / mnist1d.CACHE_NAME) as f:
        good = {name: f[name] for name in mnist1d.ARRAYS}
    monkeypatch.setattr(mnist1d, "generate_mnist1d", lambda: good)
    mnist1d.load_mnist1d(0, cache_dir=tmp_path)
    with np.load(copy) as f:
        assert mnist1d.mnist1d_digest(dict(f)) == mnist1d.MNIST1D_SHA256
    assert [p.name for p in tmp_path.iterdir()] == [mnist1d.CACHE_NAME]  # no temporary left


def test_a_changed_generator_is_refused_with_the_install_command(cache, monkeypatch):
    with np.load(cache / mnist1d.CACHE_NAME) as f:
        arrays = {name: f[name].copy() for name in mnist1d.ARRAYS}
    arrays["x"][0, 0] += 0.01
    monkeypatch.setattr(mnist1d, "generate_mnist1d", lambda: arrays)
    with pytest.raises(PackageDataError, match=re.escape(mnist1d.INSTALL_MNIST1D)):
        mnist1d.load_mnist1d(0)


def test_a_missing_package_is_refused_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)  # import fails
    with pytest.raises(PackageDataError, match=r"cannot be imported.*pip install mnist1d=="):
        mnist1d.generate_mnist1d()


def test_generation_leaves_the_global_random_state_alone(monkeypatch):
    def make_dataset(args):  # seeds and draws, as mnist1d's does
        random.seed(42)
        np.random.seed(42)  # noqa: NPY002
        return {name: np.zeros(1) for name in mnist1d.ARRAYS}

    monkeypatch.setattr(mnist1d, "_make_dataset", lambda: (make_dataset, lambda: None))
    random.seed(7)
    np.random.seed(7)  # noqa: NPY002
    mnist1d.generate_mnist1d()
    assert random.random() == random.Random(7).random()
    assert np.random.rand() == np.random.RandomState(7).rand()  # noqa: NPY002
