"""The adversarial digits parts of the demo: Danskin (PGD-AT), MaxLoss, DDi (batch-level and per
example) and DDi with the certified step, training a small CNN on scikit-learn's 8×8 digits
through `problems.training.train`, over several seeds (each seed draws its own data split,
initialization and attack starts).

Two parts share this code (`DIGITS_PARTS`): ``digits`` (CELU, no BatchNorm: every rule) and
``digits-bn`` (ReLU + BatchNorm: per-example DDi left out, it needs each example's own
gradient, which train-mode BatchNorm mixes across the batch).

Public API::

    DIGITS_PARTS, SETTINGS, VARIANTS, SETTING_RULES, COMPARISONS, METRICS
    run_digits(s, seeds, eps, runs_dir, tick, settings=("smooth",)) -> dict
    summarize_digits(out) -> dict; merge_digits(parts) -> dict
    digits_steps(s, settings) -> int     progress-bar steps of one seed
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import minimax as mm

from ..data import digits as digits_data
from ..models import build_model
from ..stats import mean_interval, paired_difference
from ..training import RunHistory, TrainConfig, train
from .common import DemoSettings, rounded

__all__ = [
    "COMPARISONS",
    "DIGITS_PARTS",
    "METRICS",
    "SETTINGS",
    "SETTING_RULES",
    "VARIANTS",
    "digits_steps",
    "merge_digits",
    "run_digits",
    "summarize_digits",
]

#: setting → (activation, normalization)
SETTINGS = {"smooth": ("celu", "none"), "relu_bn": ("relu", "batch")}
#: demo part → the settings it trains
DIGITS_PARTS: dict[str, tuple[str, ...]] = {"digits": ("smooth",), "digits-bn": ("relu_bn",)}
#: the compared rules: name → (rule of `problems.training.rules.RULES`, line search). The
#: certified step takes plain SGD steps (no momentum, no weight decay) so that the slope it
#: tests is DDi's certificate; the others take SGD with momentum 0.9 and weight decay 5e-4.
VARIANTS: dict[str, tuple[str, str]] = {
    "danskin": ("danskin", "none"),
    "maxloss": ("maxloss", "none"),
    "ddi": ("ddi", "none"),
    "ddi-example": ("ddi-example", "none"),
    "ddi-certified": ("ddi", "armijo"),
}
#: per setting, the rules it trains (per-example DDi refuses train-mode BatchNorm)
SETTING_RULES: dict[str, tuple[str, ...]] = {
    "smooth": tuple(VARIANTS),
    "relu_bn": ("danskin", "maxloss", "ddi", "ddi-certified"),
}
#: the paired differences stated: (rule, other rule), "rule − other" per seed
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("ddi", "danskin"),
    ("ddi", "maxloss"),
    ("ddi-example", "danskin"),
    ("ddi-example", "maxloss"),
    ("ddi-example", "ddi"),
    ("ddi-certified", "danskin"),
    ("ddi-certified", "maxloss"),
    ("ddi-certified", "ddi"),
)
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


def digits_steps(s: DemoSettings, settings: Sequence[str] = ("smooth",)) -> int:
    """Outer steps of one seed's digits runs of ``settings`` together (for the progress bar)."""
    n = s.digits_train_size or 1797 - round(1797 * 0.25)
    runs = sum(len(SETTING_RULES[name]) for name in settings)
    return runs * s.digits_epochs * math.ceil(n / s.digits_batch_size)


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
    settings: Sequence[str] = ("smooth",),
) -> dict[str, Any]:
    """Train every (seed, setting, rule) through problems.training.train; per-epoch records per
    seed, and per setting the mean of each `METRICS` entry with a 95% interval and the paired
    difference of each `COMPARISONS` pair with a paired t-test (`problems.stats`)."""
    out: dict[str, Any] = {
        "eps": eps,
        "epochs": s.digits_epochs,
        "restarts": s.digits_restarts,
        "pgd_steps": s.digits_steps,
        "eval": f"PGD-{s.digits_eval_steps}",
        "batch_size": s.digits_batch_size,
        "lr": s.digits_lr,
        "certified_lr": s.digits_certified_lr,
        "armijo": {"c": mm.Armijo().c, "shrink": mm.Armijo().shrink},
        "width": s.digits_width,
        "seeds": list(seeds),
        "settings": {
            name: {"activation": SETTINGS[name][0], "normalization": SETTINGS[name][1], "runs": []}
            for name in settings
        },
    }
    for seed in seeds:
        data = digits_data.load(
            seed=seed, train_size=s.digits_train_size, test_size=s.digits_test_size
        )
        out["train_examples"], out["test_examples"] = len(data.y_train), len(data.y_test)
        for setting in settings:
            runs: dict[str, Any] = {}
            for rule in SETTING_RULES[setting]:
                on_step = _on_step(tick, f"digits seed {seed} {setting}/{rule}")
                where = runs_dir / f"seed{seed}" / f"{setting}-{rule}"
                history = _train(s, seed, eps, data, rule, SETTINGS[setting], where, on_step)
                if history.status == "interrupted":  # SIGINT/SIGTERM: stop the whole demo
                    raise KeyboardInterrupt(f"interrupted while training {where}")
                runs[rule] = _rule_summary(history)
            out["settings"][setting]["runs"].append(runs)
    return summarize_digits(out)


def summarize_digits(out: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute each setting's ``rules`` (mean, 95% interval) and ``paired`` ({rule: {other:
    {metric: rule − other}}} for the `COMPARISONS` both trained) from its per-seed ``runs``;
    returns ``out``."""
    for block in out["settings"].values():
        per_seed = block["runs"]
        trained = list(per_seed[0])
        block["rules"] = {
            r: {m: mean_interval([run[r][m] or 0.0 for run in per_seed]) for m in METRICS}
            for r in trained
        }
        paired: dict[str, dict[str, Any]] = {}
        for rule, other in COMPARISONS:
            if rule in trained and other in trained:
                paired.setdefault(rule, {})[other] = {
                    m: paired_difference(
                        [run[rule][m] or 0.0 for run in per_seed],
                        [run[other][m] or 0.0 for run in per_seed],
                        better,
                    )
                    for m, better in METRICS.items()
                }
        block["paired"] = paired
        block["line_search"] = _line_search_over_seeds(per_seed)
    return out


# long: one TrainConfig literal (every field named) and the call to train
def _train(
    s: DemoSettings,
    seed: int,
    eps: float,
    data: digits_data.Digits,
    rule: str,
    setting: tuple[str, str],
    out: Path,
    callback: Callable[[dict[str, Any]], None],
) -> RunHistory:
    """One digits run: a seeded small CNN trained by the `VARIANTS` entry ``rule`` (m restarts
    for every rule)."""
    activation, normalization = setting
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
    name, line_search = VARIANTS[rule]
    certified = line_search == "armijo"
    config = TrainConfig(
        rule=name,
        restarts=s.digits_restarts,
        epochs=s.digits_epochs,
        batch_size=s.digits_batch_size,
        lr=s.digits_certified_lr if certified else s.digits_lr,
        momentum=0.0 if certified else 0.9,
        weight_decay=0.0 if certified else 5e-4,
        schedule="constant",
        eps=eps,
        step_size=2.5 * eps / s.digits_steps,
        steps=s.digits_steps,
        eval_steps=s.digits_eval_steps,
        augment=False,
        remeasure=True,
        seed=seed,
        line_search=line_search,
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
    steps = history.steps()
    out = {
        "epochs": epochs,
        "final_robust_acc": epochs[-1]["robust_acc"],
        "final_clean_acc": epochs[-1]["clean_acc"],
        "best_robust_acc": max(r["robust_acc"] for r in epochs),
        "went_up_fraction": _went_up_overall(steps),
        "mean_weights_entropy": rounded(
            sum(r["mean_weights_entropy"] for r in epochs) / len(epochs)
        ),
        "final_wall": epochs[-1]["wall"],
        "passes": epochs[-1]["forward"] + epochs[-1]["backward"],
    }
    searched = [r for r in steps if r.get("t") is not None]
    if searched:  # the certified step: per step, t and the certified and realised decreases
        out["steps"] = {
            key: [rounded(r[key], 4) for r in searched]
            for key in ("t", "certified_decrease", "realised_decrease")
        }
    return out


def _line_search_over_seeds(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The certified step's per-step records over every seed: how many steps were accepted, the
    smallest realised − certified decrease, and the median realised and certified decreases."""
    out: dict[str, Any] = {}
    for rule in per_seed[0]:
        logs = [run[rule]["steps"] for run in per_seed if "steps" in run[rule]]
        if not logs:
            continue
        t = [x for log in logs for x in log["t"]]
        pairs = [
            (c, r)
            for log in logs
            for tt, c, r in zip(
                log["t"], log["certified_decrease"], log["realised_decrease"], strict=True
            )
            if tt > 0
        ]
        out[rule] = {
            "steps": len(t),
            "accepted": len(pairs),
            "mean_t": rounded(sum(t) / len(t)),
            "certified_median": rounded(statistics.median(c for c, _ in pairs)) if pairs else None,
            "realised_median": rounded(statistics.median(r for _, r in pairs)) if pairs else None,
            "min_margin": rounded(min(r - c for c, r in pairs)) if pairs else None,
            "below_certified": sum(r < c for c, r in pairs),
        }
    return out


def _on_step(tick: Callable[[str], None], label: str) -> Callable[[dict[str, Any]], None]:
    """The trainer's per-step callback: one tick of the progress bar, named ``label``."""

    def on_step(record: dict[str, Any]) -> None:
        tick(label)

    return on_step


def _went_up_overall(steps: Sequence[Mapping[str, Any]]) -> float | None:
    measured = [r for r in steps if r.get("robust_loss_after") is not None]
    if not measured:
        return None
    return rounded(sum(r["robust_loss_after"] > r["robust_loss"] for r in measured) / len(measured))
