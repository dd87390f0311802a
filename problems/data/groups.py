"""Worst-group data sets in memory: features, labels and group labels for train, validation and
test, with the helpers the tabular loaders share (a stratified seeded split, the rule for tiny
groups, one-hot + standardized features fitted on the training part).

Public API::

    WorstGroupData(...)                .train / .val / .test = (x, y, group); .num_groups;
                                       .head(train, val, test): a smaller copy
    group_sizes(data) -> dict          group name -> {"train", "val", "test", "positive_rate"}
    group_size_table(data) -> str      the same as a Markdown table
    stratified_split(strata, fractions, seed) -> list[Tensor]   index sets, one per part
    MIN_GROUP_SIZE; keep_large_groups(groups, parts, names) -> (groups, names)
    TabularEncoder.fit(table, numeric, categorical) -> encoder; encoder.transform(table)

Batches for `minimax.WorstGroupProblem.from_module(model, data.num_groups)` are
``(x, y, group)``: ``data.train`` is one such (full) batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MIN_GROUP_SIZE",
    "SPLITS",
    "TabularEncoder",
    "WorstGroupData",
    "group_size_table",
    "group_sizes",
    "keep_large_groups",
    "stratified_split",
    "tabular_data",
    "take",
    "take_rows",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")

#: a group is kept only if it has at least this many examples in each of train, val and test
MIN_GROUP_SIZE = 10


@dataclass(frozen=True)
class WorstGroupData:
    """A worst-group data set: x float32 [n, ...], y int64 [n] in [0, num_classes), group int64
    [n] in [0, num_groups) for each of the train, val(idation) and test parts.

    ``seed`` chose the validation split (and, where the source has none, the test split);
    ``feature_names`` name the columns of a tabular x (empty otherwise)."""

    name: str
    x_train: Tensor
    y_train: Tensor
    g_train: Tensor
    x_val: Tensor
    y_val: Tensor
    g_val: Tensor
    x_test: Tensor
    y_test: Tensor
    g_test: Tensor
    group_names: tuple[str, ...]
    num_classes: int
    feature_names: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for split in SPLITS:
            x, y, g = self.part(split)
            if not (x.shape[0] == y.shape[0] == g.shape[0]):
                raise ValueError(f"{split}: x, y and group have different lengths")
            if y.dtype != torch.int64 or g.dtype != torch.int64:
                raise TypeError(f"{split}: labels and groups must be int64")
            if len(g) and not (0 <= int(g.min()) and int(g.max()) < self.num_groups):
                raise ValueError(f"{split}: group labels outside [0, {self.num_groups})")

    @property
    def num_groups(self) -> int:
        """k, the number of groups."""
        return len(self.group_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example (``(num_features,)`` for tabular data)."""
        return tuple(self.x_train.shape[1:])

    def part(self, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """(x, y, group) of ``split`` in ``SPLITS``."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}"), getattr(self, f"g_{split}")

    @property
    def train(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x, y, group) of the training part: a full batch for `minimax.WorstGroupProblem`."""
        return self.part("train")

    @property
    def val(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x, y, group) of the validation part."""
        return self.part("val")

    @property
    def test(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x, y, group) of the test part."""
        return self.part("test")

    def head(
        self, train: int | None = None, val: int | None = None, test: int | None = None
    ) -> WorstGroupData:
        """The first ``train`` / ``val`` / ``test`` examples of each part (None: all), for quick
        runs; a group may then be absent from a part."""
        sizes = dict(zip(SPLITS, (train, val, test)))
        fields: dict[str, Any] = {
            f"{v}_{split}": t[: sizes[split]]
            for split in SPLITS
            for v, t in zip(("x", "y", "g"), self.part(split))
        }
        return replace(self, **fields)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.part(s)[1])}" for s in SPLITS)
        return (
            f"WorstGroupData({self.name}, {sizes}, groups={self.num_groups}, "
            f"classes={self.num_classes}, seed={self.seed})"
        )


def group_sizes(data: WorstGroupData) -> dict[str, dict[str, float]]:
    """Group name → its example count in each split and its rate of label 1 in train."""
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(data.group_names):
        row: dict[str, float] = {s: int((data.part(s)[2] == k).sum()) for s in SPLITS}
        mask = data.g_train == k
        row["positive_rate"] = float((data.y_train[mask] == 1).double().mean()) if mask.any() else 0
        out[name] = row
    return out


def group_size_table(data: WorstGroupData, *, positive_rate: bool = True) -> str:
    """`group_sizes` as a Markdown table (with a total row); ``positive_rate`` adds the train
    rate of label 1 (for binary labels)."""
    sizes = group_sizes(data)
    head = ["group", *SPLITS] + (["label 1 in train"] if positive_rate else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in sizes.items():
        cells = [name, *(f"{int(row[s]):,}" for s in SPLITS)]
        if positive_rate:
            cells.append(f"{row['positive_rate']:.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    total = ["total", *(f"{len(data.part(s)[1]):,}" for s in SPLITS)]
    if positive_rate:
        total.append(f"{float((data.y_train == 1).double().mean()):.1%}")
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines)


def stratified_split(strata: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Split the indices 0..n-1 into ``len(fractions) + 1`` sorted parts: within each stratum
    (each distinct value of ``strata``, in sorted order), a seeded permutation gives part i
    round(fraction_i · size) indices and the last part the rest."""
    if sum(fractions) >= 1 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be ≥ 0 and sum to < 1, got {list(fractions)}")
    generator = torch.Generator().manual_seed(int(seed))
    parts: list[list[Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for value in torch.unique(strata):  # sorted
        idx = torch.nonzero(strata == value).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        start = 0
        for i, fraction in enumerate(fractions):
            stop = start + round(fraction * len(idx))
            parts[i].append(idx[start:stop])
            start = stop
        parts[-1].append(idx[start:])
    return [torch.cat(p).sort().values if p else torch.zeros(0, dtype=torch.int64) for p in parts]


def keep_large_groups(
    groups: Sequence[Tensor], names: Sequence[str], *, min_size: int = MIN_GROUP_SIZE
) -> tuple[list[Tensor], list[Tensor], tuple[str, ...]]:
    """The tiny-group rule: a group with fewer than ``min_size`` examples in any part (train, val,
    test) is dropped, its rows removed from every part, and the other groups renumbered 0..k'-1
    in their order. Returns (the rows each part keeps, the renumbered groups, the kept names)."""
    counts = torch.stack([torch.bincount(g, minlength=len(names)) for g in groups])
    kept = [k for k in range(len(names)) if int(counts[:, k].min()) >= min_size]
    if not kept:
        raise ValueError(f"every group has fewer than {min_size} examples in some part")
    new_id = torch.full((len(names),), -1, dtype=torch.int64)
    new_id[kept] = torch.arange(len(kept))
    rows = [torch.nonzero(new_id[g] >= 0).flatten() for g in groups]
    renumbered = [new_id[g[r]] for g, r in zip(groups, rows)]
    return rows, renumbered, tuple(names[k] for k in kept)


@dataclass(frozen=True)
class TabularEncoder:
    """One-hot categorical and standardized numeric columns, fitted on the training rows only.

    Numeric columns: (value − train mean) / train standard deviation (population, ddof=0; a
    constant column is divided by 1). Categorical columns: one 0/1 column per category seen in
    training (sorted); a category seen only outside training encodes as all zeros."""

    numeric: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]

    @classmethod
    def fit(
        cls, table: Mapping[str, np.ndarray], numeric: Sequence[str], categorical: Sequence[str]
    ) -> TabularEncoder:
        """Fit on ``table`` (column name → values: float for numeric, str for categorical)."""
        mean, std = [], []
        for col in numeric:
            values = np.asarray(table[col], dtype=np.float64)
            mean.append(float(values.mean()))
            s = float(values.std())
            std.append(s if s > 0 else 1.0)
        cats = tuple(tuple(sorted(set(map(str, table[col])))) for col in categorical)
        return cls(tuple(numeric), tuple(mean), tuple(std), tuple(categorical), cats)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The encoded columns: the numeric names, then ``"column=category"``."""
        onehot = (f"{c}={v}" for c, vs in zip(self.categorical, self.categories) for v in vs)
        return (*self.numeric, *onehot)

    def transform(self, table: Mapping[str, np.ndarray]) -> Tensor:
        """The encoded rows, float32 [n, len(feature_names)]."""
        blocks = []
        for col, m, s in zip(self.numeric, self.mean, self.std):
            values = np.asarray(table[col], dtype=np.float64)
            blocks.append(((values - m) / s)[:, None])
        for col, cats in zip(self.categorical, self.categories):
            values = np.asarray(table[col]).astype(str)
            blocks.append((values[:, None] == np.asarray(cats)[None, :]).astype(np.float64))
        return torch.from_numpy(np.concatenate(blocks, axis=1).astype(np.float32))


def take(table: Mapping[str, np.ndarray], rows: Tensor) -> dict[str, np.ndarray]:
    """The rows ``rows`` of every column of ``table``."""
    index = rows.numpy()
    return {col: np.asarray(values)[index] for col, values in table.items()}


def take_rows(
    table: Mapping[str, np.ndarray], y: np.ndarray, g: np.ndarray, rows: Tensor
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(table, y, group) restricted to ``rows``: one part for `tabular_data`."""
    index = rows.numpy()
    return take(table, rows), np.asarray(y)[index], np.asarray(g)[index]


def tabular_data(
    name: str,
    parts: Mapping[str, tuple[Mapping[str, np.ndarray], np.ndarray, np.ndarray]],
    group_names: Sequence[str],
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int,
    min_group_size: int = MIN_GROUP_SIZE,
) -> WorstGroupData:
    """Assemble a binary tabular `WorstGroupData` from raw ``parts`` (split → (table, y, group)):
    apply `keep_large_groups`, fit a `TabularEncoder` on the kept training rows, encode all."""
    ys = [torch.as_tensor(parts[s][1], dtype=torch.int64) for s in SPLITS]
    gs = [torch.as_tensor(parts[s][2], dtype=torch.int64) for s in SPLITS]
    rows, groups, names = keep_large_groups(gs, group_names, min_size=min_group_size)
    tables = [take(parts[s][0], r) for s, r in zip(SPLITS, rows)]
    encoder = TabularEncoder.fit(tables[0], numeric, categorical)
    xs = [encoder.transform(t) for t in tables]
    ys = [y[r] for y, r in zip(ys, rows)]
    return WorstGroupData(
        name,
        xs[0],
        ys[0],
        groups[0],
        xs[1],
        ys[1],
        groups[1],
        xs[2],
        ys[2],
        groups[2],
        group_names=names,
        num_classes=2,
        feature_names=encoder.feature_names,
        seed=int(seed),
    )
