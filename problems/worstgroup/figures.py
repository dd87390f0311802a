"""Figures of the worst-group comparison (`problems.worstgroup.compare`), from its JSON.

Public API::

    RULE_LABELS                          rule → its name in legends
    plot_curves(result, path) -> Path    worst-group training loss against passes, per setting:
                                         the mean over seeds with its 95% t-band
    plot_accuracy(result, path) -> Path  worst-group test accuracy per rule and setting, the mean
                                         with its 95% t-interval (the trees: one per data set)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..figures import fit_title, run_style
from ..stats import mean_interval

__all__ = ["DATASET_LABELS", "RULE_LABELS", "plot_accuracy", "plot_curves"]

RULE_LABELS = {
    "erm": "ERM",
    "danskin": "Danskin (worst group's gradient)",
    "group_dro": "Group DRO (online)",
    "ddi": "DDi (certified step)",
    "trees": "trees (group-balanced)",
}
DATASET_LABELS = {"adult": "Adult, 6 groups sex × race", "mnist1d": "MNIST-1D, 10 classes"}


def _band(curves: list[list[list[float]]], column: int) -> tuple[list[float], ...]:
    """Per curve point: x (epochs), the mean over seeds and its 95% interval."""
    xs, means, lows, highs = [], [], [], []
    for i in range(len(curves[0])):
        entry = mean_interval([c[i][column] for c in curves])
        xs.append(curves[0][i][0])
        means.append(entry["mean"])
        lows.append(entry["low"] if entry["low"] is not None else entry["mean"])
        highs.append(entry["high"] if entry["high"] is not None else entry["mean"])
    return xs, means, lows, highs


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 2)
    return math.ceil(n / cols), cols


def plot_curves(result: Mapping[str, Any], path: str | Path) -> Path:
    """One panel per setting: every rule's worst-group training loss (the whole training part,
    nats) against passes over it; line = mean over seeds, band = 95% t-interval."""
    import matplotlib.pyplot as plt

    settings = result["settings"]
    rows, cols = _grid(len(settings))
    fig, axes = plt.subplots(
        rows, cols, figsize=(6.2 * cols, 4.2 * rows), squeeze=False, layout="constrained"
    )
    seeds = len(result["config"]["seeds"])
    for ax, (name, block) in zip(axes.flat, settings.items()):
        for i, rule in enumerate(block["runs"][0]["rules"]):
            curves = [run["rules"][rule]["curve"] for run in block["runs"]]
            xs, mean, low, high = _band(curves, 2)
            style = run_style(i)
            ax.plot(xs, mean, label=RULE_LABELS.get(rule, rule), **style)
            ax.fill_between(xs, low, high, color=style["color"], alpha=0.15, linewidth=0)
        ax.set_xlabel("passes over the training set (epochs)")
        ax.set_ylabel("worst-group training loss (nats)")
        ax.grid(alpha=0.3)
        fit_title(ax, f"{DATASET_LABELS.get(result['config']['dataset'], '')}: {name}")
    for ax in list(axes.flat)[len(settings) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=len(labels),
        title=f"line: mean over {seeds} seeds; band: its 95% t-interval",
    )
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_accuracy(result: Mapping[str, Any], path: str | Path) -> Path:
    """Worst-group test accuracy: per setting, each rule's mean over seeds with its 95%
    t-interval as an error bar, and the trees (which depend on no setting) as a band."""
    import matplotlib.pyplot as plt

    settings = result["settings"]
    fig, ax = plt.subplots(figsize=(max(8.0, 2.4 * len(settings)), 5.0), layout="constrained")
    rules = list(next(iter(settings.values()))["rules"])
    width = 0.8 / len(rules)
    for i, rule in enumerate(rules):
        style = run_style(i)
        for j, block in enumerate(settings.values()):
            entry = block["rules"][rule]["worst_group_test_acc"]
            low = entry["low"] if entry["low"] is not None else entry["mean"]
            high = entry["high"] if entry["high"] is not None else entry["mean"]
            x = j - 0.4 + width * (i + 0.5)
            ax.errorbar(
                [x],
                [entry["mean"]],
                yerr=[[entry["mean"] - low], [high - entry["mean"]]],
                color=style["color"],
                marker=style["marker"],
                markersize=7,
                capsize=4,
                linestyle="none",
                label=RULE_LABELS.get(rule, rule) if j == 0 else None,
            )
    trees = result["trees"]["rules"]["worst_group_test_acc"]
    if trees["low"] is not None:
        ax.axhspan(trees["low"], trees["high"], color="0.5", alpha=0.25, linewidth=0)
    ax.axhline(trees["mean"], color="0.3", linestyle="--", label=RULE_LABELS["trees"])
    ax.set_xticks(range(len(settings)), list(settings))
    ax.set_xlabel("model and batch mode")
    ax.set_ylabel("worst-group test accuracy (fraction)")
    ax.grid(alpha=0.3, axis="y")
    seeds = len(result["config"]["seeds"])
    fit_title(
        ax,
        f"{DATASET_LABELS.get(result['config']['dataset'], '')}: mean over {seeds} seeds, "
        "bars and band: 95% t-intervals",
    )
    fig.legend(loc="outside lower center", ncols=3)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
