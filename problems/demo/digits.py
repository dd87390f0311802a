"""Part 4 of the demo: Danskin (PGD-AT), MaxLoss and DDi adversarial training of a small CNN on
scikit-learn's 8×8 digits, through `problems.training.train`, over several seeds (each seed
draws its own data split, initialization and attack starts)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
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
from problems.stats import mean_interval, paired_difference
from problems.training import RunHistory, TrainConfig, train

__all__ = [
    "METRICS",
    "RULES",
    "SETTINGS",
    "digits_steps",
    "merge_digits",
    "plot_digits",
    "run_digits",
    "summarize_digits",
]


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


#: the compared final metrics → True when higher is better
METRICS: dict[str, bool] = {
    "final_robust_acc": True,
    "final_clean_acc": True,
    "went_up_fraction": False,
}


def digits_steps(s: DemoSettings) -> int:
    """Outer steps of one seed's digits runs together (for the progress bar)."""
    n = s.digits_train_size or 1797 - round(1797 * 0.25)
    return len(SETTINGS) * len(RULES) * s.digits_epochs * math.ceil(n / s.digits_batch_size)


def merge_digits(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One digits part from parts run on disjoint seeds (e.g. one process per seed): the seeds
    and per-seed runs in the given order, the statistics recomputed; equal to one run over all
    the seeds."""
    if not parts:
        raise ValueError("parts is empty: pass at least one digits part")
    merged = json.loads(json.dumps(parts[0]))
    for part in parts[1:]:
        merged["seeds"] += part["seeds"]
        for setting, block in merged["settings"].items():
            block["runs"] += part["settings"][setting]["runs"]
    if len(set(merged["seeds"])) != len(merged["seeds"]):
        raise ValueError(f"parts repeat seeds: {merged['seeds']}")
    return summarize_digits(merged)


def run_digits(
    s: DemoSettings,
    seeds: Sequence[int],
    eps: float,
    runs_dir: Path,
    tick: Callable[[str], None],
) -> dict[str, Any]:
    """Train every (seed, setting, rule) through problems.training.train; per-epoch records per
    seed, and per setting the mean of each `METRICS` entry with a 95% interval and the paired
    difference DDi − other rule with a paired t-test (`problems.stats`)."""
    out: dict[str, Any] = {
        "eps": eps,
        "epochs": s.digits_epochs,
        "restarts": s.digits_restarts,
        "pgd_steps": s.digits_steps,
        "eval": f"PGD-{s.digits_eval_steps}",
        "batch_size": s.digits_batch_size,
        "lr": s.digits_lr,
        "width": s.digits_width,
        "seeds": list(seeds),
        "settings": {
            setting: {"activation": a, "normalization": n, "runs": []}
            for setting, (a, n) in SETTINGS.items()
        },
    }
    for seed in seeds:
        data = digits_data.load(
            seed=seed, train_size=s.digits_train_size, test_size=s.digits_test_size
        )
        out["train_examples"], out["test_examples"] = len(data.y_train), len(data.y_test)
        for setting, (activation, normalization) in SETTINGS.items():
            runs: dict[str, Any] = {}
            for rule in RULES:
                on_step = _on_step(tick, f"digits seed {seed} {setting}/{rule}")
                where = runs_dir / f"seed{seed}" / f"{setting}-{rule}"
                history = _train(
                    s, seed, eps, data, rule, activation, normalization, where, on_step
                )
                if history.status == "interrupted":  # SIGINT/SIGTERM: stop the whole demo
                    raise KeyboardInterrupt(f"interrupted while training {where}")
                runs[rule] = _rule_summary(history)
            out["settings"][setting]["runs"].append(runs)
    return summarize_digits(out)


def summarize_digits(out: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute each setting's ``rules`` (mean, 95% interval) and ``paired`` (DDi − other)
    from its per-seed ``runs``; returns ``out``."""
    for block in out["settings"].values():
        per_seed = block["runs"]
        block["rules"] = {
            r: {m: mean_interval([run[r][m] or 0.0 for run in per_seed]) for m in METRICS}
            for r in RULES
        }
        block["paired"] = {
            r: {
                m: paired_difference(
                    [run["ddi"][m] or 0.0 for run in per_seed],
                    [run[r][m] or 0.0 for run in per_seed],
                    better,
                )
                for m, better in METRICS.items()
            }
            for r in RULES
            if r != "ddi"
        }
    return out


def _train(
    s: DemoSettings,
    seed: int,
    eps: float,
    data: digits_data.Digits,
    rule: str,
    activation: str,
    normalization: str,
    out: Path,
    callback: Callable[[dict[str, Any]], None],
) -> RunHistory:
    """One digits run: a seeded small CNN trained by ``rule`` (m restarts for every rule)."""
    torch.manual_seed(seed)
    model = build_model(
        "small_cnn",
        activation=activation,
        normalization=normalization,
        in_channels=1,
        image_size=8,
        num_classes=10,
        width=s.digits_width,
    )
    config = TrainConfig(
        rule=rule,
        restarts=s.digits_restarts,
        epochs=s.digits_epochs,
        batch_size=s.digits_batch_size,
        lr=s.digits_lr,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="constant",
        eps=eps,
        step_size=2.5 * eps / s.digits_steps,
        steps=s.digits_steps,
        eval_steps=s.digits_eval_steps,
        augment=False,
        remeasure=True,
        seed=seed,
    )
    meta = {"model": "small_cnn", "activation": activation, "normalization": normalization}
    return train(
        model,
        data.train,
        data.test,
        config,
        out,
        progress=False,
        overwrite=True,
        meta=meta,
        callback=callback,
    )


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
    """Robust accuracy against epoch and wall-clock and the went-up fraction, per setting, on the
    first seed, with `problems.report.plot_curves`; returns (heading, file name, what it shows)
    per figure."""

    figures = []
    for setting, block in dg["settings"].items():
        label = SETTING_LABELS[setting]
        histories = {RULE_LABELS[r]: res["epochs"] for r, res in block["runs"][0].items()}
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
                histories,
                x=x,
                y=y,
                path=out / name,
                title=f"digits, {label}, seed {dg['seeds'][0]}: {what}",
                ylabel=ylabel,
            )
            figures.append((f"Digits, {label}: {what}", name, setting))
    return figures
