"""The adversarial digits parts' figures: accuracy and went-up fraction over seeds per rule, and
the certified step's certified against realised decrease per step.

Public API::

    plot_digits(dg, out) -> [(heading, file name, findings key)]   every figure of a digits part
    plot_accuracy(block, dg, label, path)       robust accuracy (epochs, seconds), went-up fraction
    plot_certified(block, dg, label, path)      certified and realised decrease per step
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import RULE_LABELS, SETTING_LABELS

__all__ = ["plot_accuracy", "plot_certified", "plot_digits"]

#: the rule whose steps `plot_certified` draws
CERTIFIED = "ddi-certified"


def plot_digits(dg: Mapping[str, Any], out: Path) -> list[tuple[str, str, str]]:
    """Per setting of a digits part: `plot_accuracy`, and `plot_certified` when the certified
    step ran; returns (heading, file name, findings key) per figure."""
    figures = []
    for setting, block in dg["settings"].items():
        label = SETTING_LABELS[setting]
        name = f"digits_{setting}_accuracy.png"
        plot_accuracy(block, dg, label, out / name)
        figures.append((f"Adversarial digits, {label}", name, f"digits_{setting}"))
        if CERTIFIED in block["runs"][0]:
            name = f"digits_{setting}_certified.png"
            plot_certified(block, dg, label, out / name)
            figures.append(
                (f"Adversarial digits, {label}: the certified step", name, f"certified_{setting}")
            )
    return figures


def plot_accuracy(block: Mapping[str, Any], dg: Mapping[str, Any], label: str, path: Path) -> None:
    """Test robust accuracy against epoch and against training seconds, and the fraction of
    steps after which the batch robust loss went up, per rule: mean over seeds, range shaded."""
    import matplotlib.pyplot as plt

    from ..figures import integer_ticks, seed_bands
    from ..files import save_figure

    runs = block["runs"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")

    def series(x: str, y: str) -> dict[str, Any]:
        out = {}
        for rule in runs[0]:
            per_seed = [[e[y] for e in run[rule]["epochs"]] for run in runs]
            xs = [e[x] for e in runs[0][rule]["epochs"]]
            if x == "wall":  # the mean over seeds: seconds differ from seed to seed
                walls = [[e["wall"] for e in run[rule]["epochs"]] for run in runs]
                xs = [sum(col) / len(col) for col in zip(*walls, strict=True)]
            out[RULE_LABELS[rule]] = (xs, per_seed)
        return out

    accuracy = f"test robust accuracy ({dg['eval']}, ε = {dg['eps']:g}), fraction"
    seed_bands(axes[0], series("epoch", "robust_acc"))
    axes[0].set(xlabel="epoch", ylabel=accuracy, title="robust accuracy against epoch")
    seed_bands(axes[1], series("wall", "robust_acc"))
    axes[1].set(
        xlabel="training time (s, mean over seeds; evaluation excluded)",
        ylabel=accuracy,
        title="robust accuracy against training time",
    )
    seed_bands(axes[2], series("epoch", "went_up_fraction"))
    axes[2].set(
        xlabel="epoch",
        ylabel="fraction of the epoch's steps",
        title="steps after which the batch robust loss went up",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    integer_ticks(axes[0])
    integer_ticks(axes[2])
    fig.suptitle(
        f"digits, {label}: mean over {len(runs)} seeds, shaded: range over the seeds", fontsize=11
    )
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def plot_certified(block: Mapping[str, Any], dg: Mapping[str, Any], label: str, path: Path) -> None:
    """The certified step, every seed: left, the certified decrease c·t·|s| and the realised
    decrease R₀ − R(θ₀ − t·u) per step; right, the realised decrease against the first-order
    prediction t·|s| with the lines y = x and y = c·x (above the second: the certificate held)."""
    import matplotlib.pyplot as plt

    from ..figures import run_style
    from ..files import save_figure

    c = dg["armijo"]["c"]
    runs = [run[CERTIFIED]["steps"] for run in block["runs"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for i, (key, what) in enumerate(
        (("realised_decrease", "realised"), ("certified_decrease", "certified"))
    ):
        style = {**run_style(i), "linestyle": "none"}
        for j, steps in enumerate(runs):
            xs = [k + 1 for k, t in enumerate(steps["t"]) if t > 0]
            ys = [v for t, v in zip(steps["t"], steps[key], strict=True) if t > 0]
            ax.plot(xs, ys, alpha=0.6, label=what if j == 0 else None, **style)
    ax.set(
        yscale="log",
        xlabel="training step (accepted steps, every seed)",
        ylabel="decrease of the batch robust loss (nats)",
        title="certified and realised decrease per step",
    )
    ax.legend(fontsize=8)
    pred = [
        cd / c
        for s in runs
        for t, cd in zip(s["t"], s["certified_decrease"], strict=True)
        if t > 0 and cd > 0
    ]
    real = [
        rd
        for s in runs
        for t, cd, rd in zip(s["t"], s["certified_decrease"], s["realised_decrease"], strict=True)
        if t > 0 and cd > 0
    ]
    ax2.plot(pred, real, alpha=0.6, **{**run_style(0), "linestyle": "none"}, label="step")
    if pred:
        lo, hi = min(pred), max(pred)
        ax2.plot([lo, hi], [lo, hi], color="k", linestyle="--", linewidth=1, label="y = x")
        ax2.plot([lo, hi], [c * lo, c * hi], color="grey", linestyle=":", label=f"y = {c:g}·x")
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="first-order prediction t·|s| (nats)",
        ylabel="realised decrease (nats)",
        title="realised against predicted decrease",
    )
    ax2.legend(fontsize=8)
    for a in (ax, ax2):
        a.grid(alpha=0.3, which="both")
    fig.suptitle(f"digits, {label}: DDi with the certified step (Armijo, c = {c:g})", fontsize=11)
    save_figure(fig, path, dpi=90)
    plt.close(fig)
