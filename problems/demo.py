"""``minimax demo``: the paper's three findings, reproduced on a CPU in a few minutes.

1. The counterexample φ(x) = x₁² + (|x₂| + 1)² (`problems.toy.Counterexample`): the single-gradient
   rule (Danskin) against DDi from x = (1, 0), with normalized steps; and the value of φ after one
   step along each rule's direction, from the directions the library returns.
2. The 2-2-1 ELU network (`problems.toy.ELUNetwork`): the exact robust loss during training, how
   often two candidate gradients conflict (negative inner product), and line scans of the exact
   robust loss along each candidate's negative gradient and along DDi's direction.
3. scikit-learn's 8×8 digits: adversarial training of a small CNN by Danskin (PGD-AT), MaxLoss and
   DDi through `problems.training.train`, with a smooth activation and no BatchNorm, and with
   ReLU + BatchNorm.

Everything lands in one folder (default ``demo-report/``): PNG figures, ``report.html``,
``summary.json`` and the training runs under ``runs/``. Every sentence of the report is generated
from the numbers of the run. Under one ``--seed`` two runs give the same ``summary.json`` except
for the wall-clock fields (`TIME_KEYS`; `strip_times` removes them).

Public API::

    add_arguments(parser)                      the CLI options (--out, --quick, --seed, --eps, ...)
    run(args) -> int                           what ``minimax demo`` runs
    run_demo(out, *, quick=False, seed=0, eps=0.1, progress=True, threads=1) -> dict  (summary)
    findings(summary) -> dict[str, list[str]]  the report's sentences, from the summary alone
    summary_tables(summary) -> [(heading, header, rows)]  the summary tables (stdout, report)
    strip_times(obj) -> obj                    the summary without wall-clock fields
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

import minimax as mm
from problems import digits as digits_data
from problems.cli import nonnegative_int, positive_number
from problems.toy import Counterexample, ELUNetwork, counterexample_phi

__all__ = [
    "EPILOG",
    "TIME_KEYS",
    "DemoSettings",
    "add_arguments",
    "findings",
    "run",
    "run_demo",
    "strip_times",
    "summary_tables",
]

#: the epilog of ``minimax demo --help``
EPILOG = (
    "Runs the paper's counterexample, the 2-2-1 ELU toy, and Danskin (PGD-AT) / MaxLoss / DDi "
    "adversarial training of a small CNN on scikit-learn's 8x8 digits (CELU without BatchNorm, "
    "and ReLU + BatchNorm). About 3 minutes on 2 CPU cores (--quick: under 30 s). Writes PNG "
    "figures, report.html and summary.json to --out, and prints the summary table.\n\n"
    "examples:\n"
    "  minimax demo                          # full run into demo-report/\n"
    "  minimax demo --quick --out /tmp/demo  # smoke run, under 30 s\n"
    "  minimax demo --seed 1 --eps 0.05      # another seed, a smaller L-inf radius\n"
)

#: keys of summary.json whose values are wall-clock measurements (they differ between runs)
TIME_KEYS: frozenset[str] = frozenset(
    {"wall", "seconds", "eval_seconds", "images_per_second", "timings", "final_wall"}
)

#: an exact robust loss "went up" after a step when it rose by more than this (toy problems)
UP_TOL = 1e-6

RULE_LABELS = {"danskin": "Danskin (PGD-AT)", "maxloss": "MaxLoss", "ddi": "DDi"}
SETTING_LABELS = {"smooth": "CELU, no BatchNorm", "relu_bn": "ReLU + BatchNorm"}
# the colours of `problems.report.plot_curves` (matplotlib's cycle, rules in this order)
COLORS = {"danskin": "tab:blue", "maxloss": "tab:orange", "ddi": "tab:green"}


# ------------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class DemoSettings:
    """The sizes of one demo run (`full` or `quick`)."""

    # counterexample
    ce_iterations: int = 20
    ce_step: float = 0.1
    ce_restarts: int = 10
    # ELU toy
    toy_iterations: int = 100
    toy_lr: float = 0.5
    toy_restarts: int = 4
    toy_pgd_steps: int = 10
    toy_resolution: int = 101
    toy_scan_at: int = 10
    toy_scan_points: int = 21
    toy_scan_length: float = 0.5
    # digits
    digits_epochs: int = 10
    digits_train_size: int | None = None
    digits_test_size: int | None = None
    digits_restarts: int = 4
    digits_steps: int = 5
    digits_batch_size: int = 64
    digits_lr: float = 0.05
    digits_width: int = 16
    digits_eval_steps: int = 20

    @classmethod
    def full(cls) -> DemoSettings:
        return cls()

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(
            toy_iterations=25,
            toy_resolution=51,
            toy_scan_at=5,
            toy_scan_points=11,
            digits_epochs=2,
            digits_train_size=256,
            digits_test_size=128,
            digits_restarts=2,
            digits_steps=3,
            digits_eval_steps=10,
        )


# ------------------------------------------------------------------------------------------------
# small pieces


class Recording(mm.Rule):
    """Wraps a rule and keeps every Direction's diagnostics (``on_direction`` sees each one)."""

    def __init__(
        self, rule: mm.Rule, on_direction: Callable[[mm.Direction, mm.Candidates], None]
    ) -> None:
        self.rule = rule
        self.on_direction = on_direction

    def __repr__(self) -> str:
        return repr(self.rule)

    def __call__(
        self,
        problem: mm.Problem,
        params: Mapping[str, Tensor],
        batch: Any,
        candidates: mm.Candidates,
    ) -> mm.Direction:
        d = self.rule(problem, params, batch, candidates)
        self.on_direction(d, candidates)
        return d


def negative_pairs(k: Tensor) -> int:
    """Pairs i < j with K_ij < 0 in a Gram matrix."""
    iu = torch.triu_indices(k.shape[0], k.shape[1], 1)
    return int((k[iu[0], iu[1]] < 0).sum())


def _flat(vector: Mapping[str, Tensor]) -> Tensor:
    return torch.cat([v.detach().reshape(-1).double() for v in vector.values()])


def _r(x: float, digits: int = 6) -> float:
    """Round for summary.json (stable text, no float noise in the last bits)."""
    return float(f"{float(x):.{digits}g}")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def strip_times(obj: Any) -> Any:
    """A copy of ``obj`` (a summary) without the wall-clock fields of `TIME_KEYS`."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k not in TIME_KEYS}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------
# 1. the counterexample


def run_counterexample(s: DemoSettings, seed: int) -> dict[str, Any]:
    """Paths of normalized Danskin and DDi from x = (1, 0), and the one-step table."""
    x0 = (1.0, 0.0)
    result: dict[str, Any] = {
        "start": list(x0),
        "step": s.ce_step,
        "iterations": s.ce_iterations,
        "restarts": s.ce_restarts,
    }
    pgd_kwargs = dict(restarts=s.ce_restarts, seed=seed)
    rules = {"danskin": mm.Danskin(normalize=True), "ddi": mm.DDi(normalize=True)}
    for name, rule in rules.items():
        toy = Counterexample(x0)
        inner = mm.PGD(10, 0.1, **pgd_kwargs)
        opt = mm.MinMaxOptimizer(
            toy.problem, torch.optim.SGD(toy.params().values(), lr=s.ce_step), inner, rule
        )
        path = [toy.params()["x"].detach().clone()]
        for _ in range(s.ce_iterations):
            opt.step(toy.batch)
            path.append(toy.params()["x"].detach().clone())
        xs = torch.stack(path).double()
        phi = counterexample_phi(xs)
        ups = int((phi[1:] > phi[:-1] + UP_TOL).sum())
        near = torch.nonzero(phi <= 1.0 + 0.01).flatten()
        result[name] = {
            "rule": repr(rule),
            "path": [[_r(a), _r(b)] for a, b in xs.tolist()],
            "phi": [_r(v) for v in phi.tolist()],
            "phi_after_first_step": _r(phi[1]),
            "final_phi": _r(phi[-1]),
            "went_up_steps": ups,
            "steps_to_within_0.01": int(near[0]) if len(near) else None,
        }
    # one step from x0 along each rule's (unnormalized) direction, as returned by the library
    toy = Counterexample(x0)
    x = toy.params()["x"].detach().double()
    dirs = {}
    for name, rule in {"danskin": mm.Danskin(), "ddi": mm.DDi()}.items():
        d, cands = mm.descent_direction(
            toy.problem, None, toy.batch, mm.PGD(10, 0.1, **pgd_kwargs), rule
        )
        dirs[name] = d
    # DDi's weight on the candidates at y = 0 and at y = 1 (restarts that found the same y share)
    y = cands.deltas.reshape(-1).double()
    w = dirs["ddi"].weights.reshape(-1).double()
    weight_y0, weight_y1 = float(w[y < 0.5].sum()), float(w[y >= 0.5].sum())
    d_dan = dirs["danskin"].vector["x"].detach().double()
    d_ddi = dirs["ddi"].vector["x"].detach().double()
    etas = [0.01, 0.05, 0.1, 0.2, 0.3, 0.5]
    table = []
    for eta in etas:
        table.append(
            {
                "eta": eta,
                "phi_danskin": _r(counterexample_phi(x - eta * d_dan), 8),
                "closed_form_danskin": _r(2 + 8 * eta**2, 8),
                "phi_ddi": _r(counterexample_phi(x - eta * d_ddi), 8),
                "closed_form_ddi": _r((1 - 2 * eta) ** 2 + 1, 8),
            }
        )
    gap = max(
        max(
            abs(r["phi_danskin"] - r["closed_form_danskin"]),
            abs(r["phi_ddi"] - r["closed_form_ddi"]),
        )
        for r in table
    )
    result["one_step"] = {
        "danskin_direction": [_r(v) for v in d_dan.tolist()],
        "ddi_direction": [_r(v) for v in d_ddi.tolist()],
        "ddi_weights": [_r(v) for v in dirs["ddi"].weights.tolist()],
        "candidates_y": [_r(v) for v in y.tolist()],
        "ddi_weight_y0": _r(weight_y0),
        "ddi_weight_y1": _r(weight_y1),
        "table": table,
        "max_gap_to_closed_form": float(f"{gap:.3g}"),
    }
    return result


def plot_counterexample(ce: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    g1, g2 = torch.meshgrid(
        torch.linspace(-0.3, 1.15, 200), torch.linspace(-0.6, 0.6, 200), indexing="ij"
    )
    phi = counterexample_phi(torch.stack([g1, g2], -1))
    cs = ax.contour(g1.numpy(), g2.numpy(), phi.numpy(), levels=18, cmap="Greys", linewidths=0.7)
    ax.clabel(cs, fontsize=6, fmt="%.2f")
    for name in ("danskin", "ddi"):
        p = torch.tensor(ce[name]["path"])
        ax.plot(
            p[:, 0], p[:, 1], "o-", ms=2.5, lw=1, color=COLORS[name], label=f"{RULE_LABELS[name]}"
        )
        ax2.plot(ce[name]["phi"], "o-", ms=2.5, lw=1, color=COLORS[name], label=RULE_LABELS[name])
    ax.plot(*ce["start"], "k*", ms=10, label="start (1, 0)")
    ax.set(xlabel="x₁", ylabel="x₂", title="φ(x) = x₁² + (|x₂|+1)²: paths, step 0.1")
    ax.legend(fontsize=8, loc="lower left")
    ax2.set(
        xlabel="iteration", ylabel="robust loss φ(x) (exact)", title="robust loss along the paths"
    )
    ax2.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# 2. the ELU network


def run_elu(s: DemoSettings, seed: int, tick: Callable[[str], None]) -> dict[str, Any]:
    """Exact robust loss of Danskin and DDi training, conflicting gradients, line scans."""
    out: dict[str, Any] = {
        "iterations": s.toy_iterations,
        "restarts": s.toy_restarts,
        "pgd_steps": s.toy_pgd_steps,
        "lr": s.toy_lr,
        "resolution": s.toy_resolution,
    }
    scan_params: dict[str, Tensor] | None = None
    for name, base in (("danskin", mm.Danskin()), ("ddi", mm.DDi())):
        toy = ELUNetwork(seed=seed)
        out.setdefault("n", int(toy.batch[0].shape[0]))
        out.setdefault("eps", toy.eps)
        counts = {
            "pairs": 0,
            "negative": 0,
            "steps_with_negative": 0,
            "example_pairs": 0,
            "example_negative": 0,
        }

        def record(
            d: mm.Direction,
            cands: mm.Candidates,
            toy: ELUNetwork = toy,
            counts: dict[str, int] = counts,
        ) -> None:
            if "gram" not in d.extras:
                return
            k = d.extras["gram"]
            neg = negative_pairs(k)
            counts["pairs"] += k.shape[0] * (k.shape[0] - 1) // 2
            counts["negative"] += neg
            counts["steps_with_negative"] += int(neg > 0)
            # diagnostic: the same count inside each example's own m candidates
            kp = mm.DDi(per_example=True)(toy.problem, toy.params(), toy.batch, cands).extras[
                "gram"
            ]
            m = cands.m
            for b in range(cands.batch_size):
                blk = kp[b * m : (b + 1) * m, b * m : (b + 1) * m]
                counts["example_pairs"] += m * (m - 1) // 2
                counts["example_negative"] += negative_pairs(blk)

        rule = Recording(base, record)
        inner = mm.PGD(s.toy_pgd_steps, toy.eps / 4, restarts=s.toy_restarts, seed=seed)
        opt = mm.MinMaxOptimizer(
            toy.problem, torch.optim.SGD(toy.params().values(), lr=s.toy_lr), inner, rule
        )
        losses = [float(toy.robust_loss(resolution=s.toy_resolution))]
        norms = []
        for it in range(s.toy_iterations):
            if name == "danskin" and it == s.toy_scan_at:
                scan_params = {k: v.detach().clone() for k, v in toy.params().items()}
            report = opt.step(toy.batch)
            norms.append(report.norm)
            losses.append(float(toy.robust_loss(resolution=s.toy_resolution)))
            tick(f"ELU toy {name}")
        went_up = sum(b > a + UP_TOL for a, b in itertools.pairwise(losses))
        out[name] = {
            "robust_loss": [_r(v) for v in losses],
            "final_robust_loss": _r(losses[-1]),
            "best_robust_loss": _r(min(losses)),
            "went_up_steps": int(went_up),
            "mean_norm": _r(sum(norms) / len(norms)),
        }
        if name == "ddi":
            out["ddi"]["gram"] = counts
    assert scan_params is not None
    out["scan"] = _elu_scan(s, seed, scan_params)
    return out


def _elu_scan(s: DemoSettings, seed: int, params: dict[str, Tensor]) -> dict[str, Any]:
    """Exact robust loss along −g_i/‖g_i‖ (each candidate) and −d/‖d‖ (DDi) from θ = params."""
    toy = ELUNetwork(seed=seed)
    problem = toy.problem
    inner = mm.PGD(s.toy_pgd_steps, toy.eps / 4, restarts=s.toy_restarts, seed=seed + 1)
    cands = inner(problem, params, toy.batch)
    grads = mm.candidate_gradients(problem, params, toy.batch, cands.deltas)
    k = mm.gram(grads)
    ddi = mm.DDi()(problem, params, toy.batch, cands)
    names = list(params)
    directions: dict[str, dict[str, Tensor]] = {}
    for i in range(cands.m):
        directions[f"candidate {i + 1}"] = {n: grads[n][i] for n in names}
    directions["DDi"] = ddi.vector
    ts = torch.linspace(0, s.toy_scan_length, s.toy_scan_points).tolist()
    r0 = float(toy.robust_loss(params, resolution=s.toy_resolution))
    lines: dict[str, list[float]] = {}
    for label, vec in directions.items():
        norm = float(_flat(vec).norm())
        values = []
        for t in ts:
            if t == 0 or norm == 0:
                values.append(r0)
                continue
            moved = {n: params[n] - (t / norm) * vec[n].to(params[n].dtype) for n in names}
            values.append(float(toy.robust_loss(moved, resolution=s.toy_resolution)))
        lines[label] = [_r(v) for v in values]
    t1 = ts[1]
    return {
        "at_iteration": s.toy_scan_at,
        "t": [_r(t) for t in ts],
        "robust_loss_at_start": _r(r0),
        "lines": lines,
        "first_step_change": {k: _r(v[1] - v[0]) for k, v in lines.items()},
        "min_along": {k: _r(min(v)) for k, v in lines.items()},
        "negative_pairs": negative_pairs(k),
        "first_step": _r(t1),
        "ddi_weights": [_r(v) for v in ddi.weights.tolist()],
    }


def plot_elu(elu: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name in ("danskin", "ddi"):
        ax.plot(elu[name]["robust_loss"], lw=1.2, color=COLORS[name], label=RULE_LABELS[name])
    ax.set(
        xlabel="iteration",
        ylabel="exact robust loss (grid)",
        title=f"2-2-1 ELU network, n={elu['n']}, ε={elu['eps']:g}, m={elu['restarts']}",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    scan = elu["scan"]
    for label, values in scan["lines"].items():
        style = dict(color=COLORS["ddi"], lw=2) if label == "DDi" else dict(lw=1, ls="--")
        ax2.plot(scan["t"], values, label=label, **style)
    ax2.set(
        xlabel="step length t along the unit direction",
        ylabel="exact robust loss",
        title=f"line scans at Danskin's iterate {scan['at_iteration']}",
    )
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# 3. digits


SETTINGS = {"smooth": ("celu", "none"), "relu_bn": ("relu", "batch")}
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
    from problems.models import build_model
    from problems.training import TrainConfig, train

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
            torch.manual_seed(seed)
            model = build_model(
                "small_cnn",
                activation=activation,
                norm=norm,
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
            history = train(
                model,
                data.train,
                data.test,
                config,
                runs_dir / f"{setting}-{rule}",
                progress=False,
                overwrite=True,
                meta={"model": "small_cnn", "activation": activation, "norm": norm},
                callback=lambda _record, label=f"digits {setting}/{rule}": tick(label),
            )
            epochs = [
                {
                    k: (_r(v) if isinstance(v, float) else v)
                    for k, v in r.items()
                    if k in EPOCH_FIELDS
                }
                for r in history.epochs
            ]
            block["rules"][rule] = {
                "epochs": epochs,
                "final_robust_acc": epochs[-1]["robust_acc"],
                "final_clean_acc": epochs[-1]["clean_acc"],
                "best_robust_acc": max(r["robust_acc"] for r in epochs),
                "went_up_fraction": _went_up_overall(history),
                "mean_weights_entropy": _r(
                    sum(r["mean_weights_entropy"] for r in epochs) / len(epochs)
                ),
                "final_wall": epochs[-1]["wall"],
                "passes": epochs[-1]["forward"] + epochs[-1]["backward"],
            }
        out["settings"][setting] = block
    return out


def _went_up_overall(history: Any) -> float | None:
    steps = [r for r in history.steps() if r.get("robust_loss_after") is not None]
    if not steps:
        return None
    return _r(sum(r["robust_loss_after"] > r["robust_loss"] for r in steps) / len(steps))


def plot_digits(dg: Mapping[str, Any], out: Path) -> list[tuple[str, str, str]]:
    """Robust accuracy against epoch and wall-clock and the went-up fraction, per setting, with
    `problems.report.plot_curves`; returns (heading, file name, what it shows) per figure."""
    from problems.report import plot_curves

    figures = []
    for setting, block in dg["settings"].items():
        label = SETTING_LABELS[setting]
        histories = {RULE_LABELS[r]: res["epochs"] for r, res in block["rules"].items()}
        for x, y, what, kw in (
            ("epoch", "robust_acc", "robust accuracy against epoch", {}),
            ("wall", "robust_acc", "robust accuracy against wall-clock", {}),
            (
                "epoch",
                "went_up_fraction",
                "fraction of steps after which the batch robust loss went up",
                {"ylabel": "fraction of steps: robust loss went up"},
            ),
        ):
            name = f"digits_{setting}_{y}_{x}.png"
            if y == "robust_acc":
                kw = {"ylabel": f"test robust accuracy ({dg['eval']}, ε={dg['eps']:g})"}
            plot_curves(
                histories, x=x, y=y, path=out / name, title=f"digits, {label}: {what}", **kw
            )
            figures.append((f"Digits, {label}: {what}", name, setting))
    return figures


# ------------------------------------------------------------------------------------------------
# sentences and tables, from the summary alone


def _cmp(a: float, b: float, *, higher_is_better: bool, tol: float) -> str:
    diff = a - b if higher_is_better else b - a
    if abs(a - b) <= tol:
        return "a tie"
    return "DDi wins" if diff > 0 else "DDi does not win"


def _fmt_vec(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x if abs(x) > 1e-9 else 0.0:.4g}" for x in v) + ")"


def findings(summary: Mapping[str, Any]) -> dict[str, list[str]]:
    """The report's sentences, generated from the numbers of ``summary`` (nothing hand-written
    about the outcome)."""
    out: dict[str, list[str]] = {}
    ce = summary.get("counterexample")
    if ce:
        dan, ddi, one = ce["danskin"], ce["ddi"], ce["one_step"]
        n = ce["iterations"]
        phi0 = dan["phi"][0]

        def moved(v: float) -> str:
            return "up" if v > phi0 else ("down" if v < phi0 else "unchanged")

        def reached(res: Mapping[str, Any]) -> str:
            k = res["steps_to_within_0.01"]
            return f"{k} steps" if k is not None else f"none of the {n} steps"

        table = one["table"]
        etas = ", ".join(f"{r['eta']:g}" for r in table)
        dan_up = all(r["phi_danskin"] > phi0 for r in table)
        ddi_down = all(r["phi_ddi"] < phi0 for r in table)
        out["counterexample"] = [
            f"At x = {_fmt_vec(ce['start'])} the library's Danskin direction is "
            f"{_fmt_vec(one['danskin_direction'])} and DDi's is {_fmt_vec(one['ddi_direction'])} "
            f"(total weight {one['ddi_weight_y0']:.4g} on the candidates at y = 0 and "
            f"{one['ddi_weight_y1']:.4g} on those at y = 1).",
            f"One normalized step of {ce['step']:g} moved φ from {phi0:.4f} to "
            f"{dan['phi_after_first_step']:.4f} with Danskin ({moved(dan['phi_after_first_step'])})"
            f" and to {ddi['phi_after_first_step']:.4f} with DDi "
            f"({moved(ddi['phi_after_first_step'])}).",
            f"After {n} steps φ was {dan['final_phi']:.4f} with Danskin vs {ddi['final_phi']:.4f} "
            f"with DDi (the minimum is 1); φ went up (by more than {UP_TOL:g}) after "
            f"{dan['went_up_steps']} of Danskin's "
            f"{n} steps and {ddi['went_up_steps']} of DDi's. φ first came within 0.01 of the "
            f"minimum after {reached(dan)} with Danskin and {reached(ddi)} with DDi.",
            f"One step of size η along the library's directions, for η in "
            f"{etas}: φ "
            f"{'rose above' if dan_up else 'did not always rise above'} {phi0:g} along Danskin's "
            f"and {'fell below' if ddi_down else 'did not always fall below'} it along DDi's; the "
            f"values match 2 + 8η² and (1 − 2η)² + 1 to within "
            f"{one['max_gap_to_closed_form']:.1e}.",
        ]
    elu = summary.get("elu")
    if elu:
        dan, ddi, scan = elu["danskin"], elu["ddi"], elu["scan"]
        n = elu["iterations"]
        g = ddi["gram"]
        verdict = _cmp(
            ddi["final_robust_loss"], dan["final_robust_loss"], higher_is_better=False, tol=5e-5
        )
        lines = scan["lines"]
        cand = {k: v for k, v in lines.items() if k != "DDi"}
        first = scan["first_step_change"]
        cand_first = [first[k] for k in cand]
        out["elu"] = [
            f"Exact robust loss (grid of {elu['resolution']}² points per example) after {n} "
            f"iterations, from {dan['robust_loss'][0]:.4f}: {dan['final_robust_loss']:.4f} with "
            f"Danskin vs {ddi['final_robust_loss']:.4f} with DDi ({verdict}); lowest on the way "
            f"{dan['best_robust_loss']:.4f} vs {ddi['best_robust_loss']:.4f} (a constant "
            f"prediction of ½ has loss log 2 = {math.log(2):.4f}).",
            f"The exact robust loss went up (by more than {UP_TOL:g}) after "
            f"{dan['went_up_steps']} of Danskin's {n} steps "
            f"and {ddi['went_up_steps']} of DDi's.",
            f"Of the {g['pairs']} pairs of candidate gradients (batch level, m = "
            f"{elu['restarts']}) DDi formed over training, {g['negative']} had a negative inner "
            f"product ({g['steps_with_negative']} of {n} steps had at least one); within single "
            f"examples, {g['example_negative']} of {g['example_pairs']} pairs did.",
            f"Line scans at Danskin's iterate {scan['at_iteration']} (robust loss "
            f"{scan['robust_loss_at_start']:.4f}): a first step of length {scan['first_step']:g} "
            f"changed the exact robust loss by {first['DDi']:+.4f} along DDi's direction and by "
            f"{min(cand_first):+.4f} to {max(cand_first):+.4f} along the {len(cand)} candidates' "
            f"negative gradients; the lowest value along the DDi line was "
            f"{scan['min_along']['DDi']:.4f} vs {min(scan['min_along'][k] for k in cand):.4f} "
            f"along the best candidate line.",
        ]
    dg = summary.get("digits")
    if dg:
        out["digits"] = [
            f"{dg['train_examples']} training and {dg['test_examples']} test images, L∞ ε = "
            f"{dg['eps']:g}, m = {dg['restarts']} restarts of {dg['pgd_steps']}-step PGD for "
            f"every rule, {dg['epochs']} epochs, test robust accuracy by {dg['eval']}.",
        ]
        for setting, block in dg["settings"].items():
            out[f"digits_{setting}"] = _digits_sentences(
                SETTING_LABELS[setting], block, dg["restarts"]
            )
    return out


def _early_epoch(epochs: int) -> int:
    return max(1, math.ceil(epochs / 4))


def _digits_sentences(label: str, block: Mapping[str, Any], m: int) -> list[str]:
    rules = block["rules"]
    dan, ml, ddi = rules["danskin"], rules["maxloss"], rules["ddi"]
    n_epochs = len(ddi["epochs"])
    early = _early_epoch(n_epochs)

    def at(res: Mapping[str, Any], epoch: int) -> float:
        return res["epochs"][epoch - 1]["robust_acc"]

    best_rule = max(RULES, key=lambda r: (rules[r]["final_robust_acc"], r == "ddi"))
    verdict = _cmp(ddi["final_robust_acc"], dan["final_robust_acc"], higher_is_better=True, tol=0.0)
    early_verdict = _cmp(at(ddi, early), at(dan, early), higher_is_better=True, tol=0.0)
    # robust accuracy at equal wall-clock: the last evaluation within Danskin's total time
    budget = dan["final_wall"]
    within = [r for r in ddi["epochs"] if r["wall"] <= budget * 1.0001]
    equal_time = within[-1]["robust_acc"] if within else None
    tails = [[r["robust_acc"] for r in res["epochs"][n_epochs // 2 :]] for res in rules.values()]
    half = [v for tail in tails for v in tail]
    swings = [abs(b - a) for tail in tails for a, b in itertools.pairwise(tail)]
    noise = max(swings) if swings else 0.0
    gap = abs(ddi["final_robust_acc"] - dan["final_robust_acc"])
    sentences = [
        f"{label}: DDi's final robust accuracy was {ddi['final_robust_acc']:.3f} vs Danskin's "
        f"{dan['final_robust_acc']:.3f} and MaxLoss's {ml['final_robust_acc']:.3f} "
        f"({verdict} against Danskin; highest: {RULE_LABELS[best_rule]}). Final clean accuracy: "
        f"{ddi['final_clean_acc']:.3f} (DDi), {dan['final_clean_acc']:.3f} (Danskin), "
        f"{ml['final_clean_acc']:.3f} (MaxLoss).",
        f"Over the second half of training the robust accuracy moved by up to {noise:.3f} from "
        f"one epoch to the next (range {min(half):.3f}–{max(half):.3f} over the three rules); "
        f"the final gap between DDi and Danskin, {gap:.3f}, is "
        f"{'within' if gap <= noise else 'larger than'} that swing (one seed).",
        f"Early on (epoch {early} of {n_epochs}) the robust accuracy was {at(ddi, early):.3f} "
        f"for DDi vs {at(dan, early):.3f} for Danskin and {at(ml, early):.3f} for MaxLoss "
        f"({early_verdict} against Danskin).",
        f"The batch robust loss, re-measured by rerunning the attack after the step, went up "
        f"after {_pct(dan['went_up_fraction'])} of Danskin's steps, "
        f"{_pct(ml['went_up_fraction'])} of MaxLoss's and {_pct(ddi['went_up_fraction'])} of "
        f"DDi's.",
        f"The entropy of DDi's weights over the m = {m} "
        f"candidates averaged {ddi['mean_weights_entropy']:.3f} (0: all weight on one "
        f"candidate, as Danskin; log m = {math.log(m):.3f}: equal weights).",
        f"Compute: DDi ran {ddi['passes']} forward and backward passes over a batch, "
        f"Danskin {dan['passes']} and MaxLoss {ml['passes']} (DDi "
        f"{ddi['passes'] / max(dan['passes'], 1):.2f}× Danskin's). "
        f"Training wall-clock: {ddi['final_wall']:.1f} s for DDi, {dan['final_wall']:.1f} s for "
        f"Danskin, {ml['final_wall']:.1f} s for MaxLoss (DDi took "
        f"{ddi['final_wall'] / max(dan['final_wall'], 1e-9):.2f}× Danskin's time)"
        + (
            f"; within Danskin's total time DDi reached {equal_time:.3f} robust accuracy."
            if equal_time is not None
            else "; DDi's first epoch already took longer than all of Danskin's training."
        ),
    ]
    return sentences


def summary_tables(summary: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The summary tables (heading, header, rows of strings), for stdout and the report."""
    tables = []
    ce, elu = summary.get("counterexample"), summary.get("elu")
    if ce or elu:
        header = ["problem", "rule", "start", "after 1 step", "final", "steps up", "steps"]
        rows = []
        # (label, part, its values per iteration, the value after one step, the final value)
        toys = [("counterexample φ", ce, "phi", "final_phi"),
                ("ELU toy robust loss", elu, "robust_loss", "final_robust_loss")]  # fmt: skip
        for label, part, curve, final in toys:
            for r in ("danskin", "ddi") if part else ():
                res = part[r]
                rows.append([
                    label, RULE_LABELS[r], f"{res[curve][0]:.4f}", f"{res[curve][1]:.4f}",
                    f"{res[final]:.4f}", str(res["went_up_steps"]), str(part["iterations"]),
                ])  # fmt: skip
        tables.append(("Toy problems (exact robust loss)", header, rows))
    dg = summary.get("digits")
    if dg:
        early = _early_epoch(dg["epochs"])
        header = [
            "setting",
            "rule",
            "clean acc",
            "robust acc",
            "best robust acc",
            f"robust acc @ epoch {early}",
            "loss went up",
            "mean ‖d‖ (last epoch)",
            "passes (fwd+bwd)",
            "wall (s)",
        ]
        rows = []
        for setting, block in dg["settings"].items():
            for r, res in block["rules"].items():
                rows.append(
                    [
                        SETTING_LABELS[setting],
                        RULE_LABELS[r],
                        f"{res['final_clean_acc']:.3f}",
                        f"{res['final_robust_acc']:.3f}",
                        f"{res['best_robust_acc']:.3f}",
                        f"{res['epochs'][early - 1]['robust_acc']:.3f}",
                        _pct(res["went_up_fraction"]),
                        f"{res['epochs'][-1]['mean_norm']:.3g}",
                        str(res["passes"]),
                        f"{res['final_wall']:.1f}",
                    ]
                )
        tables.append((f"Digits, {dg['epochs']} epochs, ε = {dg['eps']:g}", header, rows))
    return tables


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table (for stdout)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))
    body = [
        "  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


# ------------------------------------------------------------------------------------------------
# the report


CAPTIONS = {
    "counterexample": "Left: contour of φ(x) = max_y f(x, y) = x₁² + (|x₂|+1)² with the paths of "
    "normalized Danskin and DDi steps from (1, 0), candidates from 10 restarts of 10-step "
    "projected ascent on y. Right: the exact φ along each path.",
    "elu": "Left: exact robust loss (grid enumeration) of the 2-2-1 ELU network trained by Danskin "
    "and by DDi with the same PGD candidates. Right: the exact robust loss along each "
    "candidate's unit negative gradient and along DDi's unit direction.",
}


def write_report(
    summary: Mapping[str, Any], out: Path, figures: Sequence[tuple[str, str, str]]
) -> Path:
    """report.html through `problems.report.write_html`: tables, then each figure with the
    findings about it."""
    from problems.report import write_html

    said = findings(summary)
    sections = []
    for heading, filename, key in figures:
        text = said.get(key, [])
        if key.startswith("digits_") and "went_up" in filename:
            text = [s for s in text if "went up" in s]
        elif key.startswith("digits_") and "_wall" in filename:
            text = [s for s in text if "wall-clock" in s]
        elif key.startswith("digits_"):
            text = [s for s in text if "went up" not in s and "wall-clock" not in s]
            text = said.get("digits", []) + text
        caption = " ".join([CAPTIONS.get(key, ""), *text]).strip()
        sections.append((heading, filename, caption))
    cfg = summary["config"]
    intro = (
        f"minimax demo, seed {cfg['seed']}, {'quick' if cfg['quick'] else 'full'} run, "
        f"L∞ ε = {cfg['eps']:g} on the digits. Every number and sentence below is "
        f"generated from this run (summary.json holds the numbers)."
    )
    return write_html(
        out / "report.html",
        "minimax demo: Danskin's Descent Direction (DDi)",
        sections,
        summary_tables(summary),
        intro=intro,
    )


def run_demo(
    out: str | os.PathLike[str] = "demo-report",
    *,
    quick: bool = False,
    seed: int = 0,
    eps: float = 0.1,
    progress: bool = True,
    threads: int | None = 1,
    parts: Sequence[str] = ("counterexample", "elu", "digits"),
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary (also written to ``summary.json``)."""
    import problems.report  # noqa: F401  (selects matplotlib's Agg backend)

    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    unknown = set(parts) - {"counterexample", "elu", "digits"}
    if unknown:
        raise ValueError(f"unknown demo parts {sorted(unknown)}")
    s = DemoSettings.quick() if quick else DemoSettings.full()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    total = (
        (2 * s.ce_iterations if "counterexample" in parts else 0)
        + (2 * s.toy_iterations if "elu" in parts else 0)
        + (digits_steps(s) if "digits" in parts else 0)
    )
    summary: dict[str, Any] = {
        "config": {
            "seed": seed,
            "quick": quick,
            "eps": eps,
            "threads": threads,
            "settings": {k: v for k, v in vars(s).items()},
        },
        "timings": {},
    }
    figures: list[tuple[str, str, str]] = []
    bar = tqdm(total=total, desc="demo", unit="step", disable=not progress, dynamic_ncols=True)

    def tick(label: str) -> None:
        if bar.n == 0 or getattr(bar, "_label", None) != label:
            bar.set_description(label)
            bar._label = label  # type: ignore[attr-defined]
        bar.update(1)

    t_start = time.perf_counter()
    try:
        if "counterexample" in parts:
            t0 = time.perf_counter()
            bar.set_description("counterexample")
            ce = run_counterexample(s, seed)
            bar.update(2 * s.ce_iterations)
            summary["counterexample"] = ce
            plot_counterexample(ce, out / "counterexample.png")
            figures.append(("The counterexample", "counterexample.png", "counterexample"))
            summary["timings"]["counterexample"] = round(time.perf_counter() - t0, 2)
        if "elu" in parts:
            t0 = time.perf_counter()
            elu = run_elu(s, seed, tick)
            summary["elu"] = elu
            plot_elu(elu, out / "elu_toy.png")
            figures.append(("The ELU network toy", "elu_toy.png", "elu"))
            summary["timings"]["elu"] = round(time.perf_counter() - t0, 2)
        if "digits" in parts:
            t0 = time.perf_counter()
            dg = run_digits(s, seed, eps, out / "runs", tick)
            summary["digits"] = dg
            figures.extend((h, f, f"digits_{k}") for h, f, k in plot_digits(dg, out))
            summary["timings"]["digits"] = round(time.perf_counter() - t0, 2)
    finally:
        bar.close()
        torch.set_num_threads(saved_threads)
    summary["timings"]["total"] = round(time.perf_counter() - t_start, 2)
    (out / "summary.json").write_text(
        json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    write_report(summary, out, figures)
    return summary


# ------------------------------------------------------------------------------------------------
# the CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``minimax demo``."""
    parser.add_argument(
        "--out",
        default="demo-report",
        help="folder for the figures, report.html and summary.json (default: demo-report)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small version that runs in well under 30 s (tests, smoke runs)",
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of every random choice (same seed, same summary.json apart "
        "from wall-clock fields)",
    )
    parser.add_argument(
        "--eps",
        type=positive_number,
        default=0.1,
        help="L∞ radius on the digits (pixels in [0, 1]; default 0.1)",
    )
    parser.add_argument(
        "--threads",
        type=nonnegative_int,
        default=1,
        help="torch CPU threads (default 1; 0 keeps torch's default)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``minimax demo`` with parsed ``args``; prints the summary table; returns 0."""
    summary = run_demo(
        args.out,
        quick=args.quick,
        seed=args.seed,
        eps=args.eps,
        progress=getattr(args, "progress", True),
        threads=getattr(args, "threads", 1) or None,
    )
    for heading, header, rows in summary_tables(summary):
        print(f"\n{heading}")
        print(format_table(header, rows))
    print(
        f"\nreport: {Path(args.out) / 'report.html'}  "
        f"(summary.json, {summary['timings']['total']:.0f} s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m problems.demo", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
