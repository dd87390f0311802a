"""Part 3 of the demo: Danskin (PGD-AT), MaxLoss and DDi adversarial training of a small CNN on
scikit-learn's 8×8 digits, through `problems.training.train`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from problems.data import digits as digits_data
from problems.demo.common import (
    RULE_LABELS,
    SETTING_LABELS,
    DemoSettings,
    rounded,
)
from problems.models import build_model
from problems.report import plot_curves
from problems.training import RunHistory, TrainConfig, train

__all__ = ["RULES", "SETTINGS", "digits_steps", "plot_digits", "run_digits"]


SETTINGS = {"smooth": ("celu", "none"), "relu_bn": ("relu", "batch")}
#: the rules the demo compares (names of `problems.training.rules.RULES`; ddi-example is left
#: out: it refuses train-mode BatchNorm, one of the two settings)
RULES = ("danskin", "maxloss", "ddi")
EPOCH_FIELDS = (
    "epoch",
    "clean_acc",
    "robust_acc",
    "train_loss",
    "went_up_fraction",
    "mean_norm",
    "mean_weights_entropy",
    "wall",
    "forward",
    "backward",
)


def digits_steps(s: DemoSettings) -> int:
    """Outer steps of all the digits runs together (for the progress bar)."""
    n = s.digits_train_size or 1797 - round(1797 * 0.25)
    return len(SETTINGS) * len(RULES) * s.digits_epochs * math.ceil(n / s.digits_batch_size)


def run_digits(
    s: DemoSettings, seed: int, eps: float, runs_dir: Path, tick: Callable[[str], None]
) -> dict[str, Any]:
    """Train every (setting, rule) through problems.training.train; per-epoch records."""

    data = digits_data.load(seed=seed, train_size=s.digits_train_size, test_size=s.digits_test_size)
    out: dict[str, Any] = {
        "train_examples": len(data.y_train),
        "test_examples": len(data.y_test),
        "eps": eps,
        "epochs": s.digits_epochs,
        "restarts": s.digits_restarts,
        "pgd_steps": s.digits_steps,
        "eval": f"PGD-{s.digits_eval_steps}",
        "batch_size": s.digits_batch_size,
        "lr": s.digits_lr,
        "width": s.digits_width,
        "settings": {},
    }
    for setting, (activation, norm) in SETTINGS.items():
        block: dict[str, Any] = {"activation": activation, "norm": norm, "rules": {}}
        for rule in RULES:
            history = _train(s, seed, eps, data, rule, activation, norm,
                             runs_dir / f"{setting}-{rule}",
                             _on_step(tick, f"digits {setting}/{rule}"))  # fmt: skip
            block["rules"][rule] = _rule_summary(history)
        out["settings"][setting] = block
    return out


def _train(
    s: DemoSettings,
    seed: int,
    eps: float,
    data: digits_data.Digits,
    rule: str,
    activation: str,
    norm: str,
    out: Path,
    callback: Callable[[dict[str, Any]], None],
) -> RunHistory:
    """One digits run: a seeded small CNN trained by ``rule`` (m restarts for every rule)."""
    torch.manual_seed(seed)
    model = build_model("small_cnn", activation=activation, norm=norm, in_channels=1,
                        image_size=8, num_classes=10, width=s.digits_width)  # fmt: skip
    config = TrainConfig(
        rule=rule, restarts=s.digits_restarts, epochs=s.digits_epochs,
        batch_size=s.digits_batch_size, lr=s.digits_lr, momentum=0.9, weight_decay=5e-4,
        schedule="constant", eps=eps, step_size=2.5 * eps / s.digits_steps,
        steps=s.digits_steps, eval_steps=s.digits_eval_steps, augment=False, remeasure=True,
        seed=seed,
    )  # fmt: skip
    meta = {"model": "small_cnn", "activation": activation, "norm": norm}
    return train(model, data.train, data.test, config, out, progress=False, overwrite=True,
                 meta=meta, callback=callback)  # fmt: skip


def _rule_summary(history: RunHistory) -> dict[str, Any]:
    """A run's rounded epoch records and the numbers the report states about it."""
    epochs = [
        {k: (rounded(v) if isinstance(v, float) else v) for k, v in r.items() if k in EPOCH_FIELDS}
        for r in history.epochs
    ]
    return {
        "epochs": epochs,
        "final_robust_acc": epochs[-1]["robust_acc"],
        "final_clean_acc": epochs[-1]["clean_acc"],
        "best_robust_acc": max(r["robust_acc"] for r in epochs),
        "went_up_fraction": _went_up_overall(history),
        "mean_weights_entropy": rounded(
            sum(r["mean_weights_entropy"] for r in epochs) / len(epochs)
        ),
        "final_wall": epochs[-1]["wall"],
        "passes": epochs[-1]["forward"] + epochs[-1]["backward"],
    }


def _on_step(tick: Callable[[str], None], label: str) -> Callable[[dict[str, Any]], None]:
    """The trainer's per-step callback: one tick of the progress bar, named ``label``."""

    def on_step(record: dict[str, Any]) -> None:
        tick(label)

    return on_step


def _went_up_overall(history: RunHistory) -> float | None:
    steps = [r for r in history.steps() if r.get("robust_loss_after") is not None]
    if not steps:
        return None
    return rounded(sum(r["robust_loss_after"] > r["robust_loss"] for r in steps) / len(steps))


def plot_digits(dg: Mapping[str, Any], out: Path) -> list[tuple[str, str, str]]:
    """Robust accuracy against epoch and wall-clock and the went-up fraction, per setting, with
    `problems.report.plot_curves`; returns (heading, file name, what it shows) per figure."""

    figures = []
    for setting, block in dg["settings"].items():
        label = SETTING_LABELS[setting]
        histories = {RULE_LABELS[r]: res["epochs"] for r, res in block["rules"].items()}
        accuracy = f"test robust accuracy ({dg['eval']}, ε={dg['eps']:g})"
        for x, y, what, ylabel in (
            ("epoch", "robust_acc", "robust accuracy against epoch", accuracy),
            ("wall", "robust_acc", "robust accuracy against wall-clock", accuracy),
            (
                "epoch",
                "went_up_fraction",
                "fraction of steps after which the batch robust loss went up",
                "fraction of steps: robust loss went up",
            ),
        ):
            name = f"digits_{setting}_{y}_{x}.png"
            plot_curves(
                histories, x=x, y=y, path=out / name, title=f"digits, {label}: {what}",
                ylabel=ylabel,
            )  # fmt: skip
            figures.append((f"Digits, {label}: {what}", name, setting))
    return figures
