"""Part 2 of the demo: the 2-2-1 ELU network, trained by Danskin and DDi with its exact robust
loss, conflicting candidate gradients, and line scans."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import minimax as mm
from problems.demo.common import (
    COLORS,
    RULE_LABELS,
    UP_TOL,
    DemoSettings,
    Recording,
    flat,
    negative_pairs,
    rounded,
)
from problems.toy import ELUNetwork
from problems.training.rules import build_rule

__all__ = ["plot_elu", "run_elu"]


class _GramCounts:
    """Counts the candidate-gradient pairs with a negative inner product in each Gram matrix DDi
    forms (batch level), and, as a diagnostic, inside each example's own m candidates."""

    def __init__(self, toy: ELUNetwork) -> None:
        self.toy = toy
        self.counts = dict.fromkeys(
            ("pairs", "negative", "steps_with_negative", "example_pairs", "example_negative"), 0
        )

    def __call__(self, d: mm.Direction, cands: mm.Candidates) -> None:
        if "gram" not in d.extras:
            return
        k, counts = d.extras["gram"], self.counts
        neg = negative_pairs(k)
        counts["pairs"] += k.shape[0] * (k.shape[0] - 1) // 2
        counts["negative"] += neg
        counts["steps_with_negative"] += int(neg > 0)
        toy, m = self.toy, cands.m
        per_example = build_rule("ddi-example")(toy.problem, toy.params(), toy.batch, cands)
        kp = per_example.extras["gram"]
        for b in range(cands.batch_size):
            blk = kp[b * m : (b + 1) * m, b * m : (b + 1) * m]
            counts["example_pairs"] += m * (m - 1) // 2
            counts["example_negative"] += negative_pairs(blk)


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
    for name in ("danskin", "ddi"):
        toy = ELUNetwork(seed=seed)
        batch: Any = toy.batch  # (x [n, 2], y [n])
        out.setdefault("n", int(batch[0].shape[0]))
        out.setdefault("eps", toy.eps)
        gram = _GramCounts(toy)
        rule = Recording(build_rule(name), gram)
        inner = mm.PGD(s.toy_pgd_steps, toy.eps / 4, restarts=s.toy_restarts, seed=seed)
        opt = mm.MinMaxOptimizer(
            toy.problem, torch.optim.SGD(toy.params().values(), lr=s.toy_lr), inner, rule
        )
        losses = [float(toy.robust_loss(resolution=s.toy_resolution))]
        norms = []
        for it in range(s.toy_iterations):
            if name == "danskin" and it == s.toy_scan_at:
                scan_params = {k: v.detach().clone() for k, v in toy.params().items()}
            norms.append(opt.step(toy.batch).norm)
            losses.append(float(toy.robust_loss(resolution=s.toy_resolution)))
            tick(f"ELU toy {name}")
        went_up = sum(b > a + UP_TOL for a, b in itertools.pairwise(losses))
        out[name] = {
            "robust_loss": [rounded(v) for v in losses],
            "final_robust_loss": rounded(losses[-1]),
            "best_robust_loss": rounded(min(losses)),
            "went_up_steps": int(went_up),
            "mean_norm": rounded(sum(norms) / len(norms)),
        }
        if name == "ddi":
            out["ddi"]["gram"] = gram.counts
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
    ddi = build_rule("ddi")(problem, params, toy.batch, cands)
    names = list(params)
    directions: dict[str, dict[str, Tensor]] = {}
    for i in range(cands.m):
        directions[f"candidate {i + 1}"] = {n: grads[n][i] for n in names}
    directions["DDi"] = ddi.vector
    ts = torch.linspace(0, s.toy_scan_length, s.toy_scan_points).tolist()
    r0 = float(toy.robust_loss(params, resolution=s.toy_resolution))
    lines: dict[str, list[float]] = {}
    for label, vec in directions.items():
        norm = float(flat(vec).norm())
        values = []
        for t in ts:
            if t == 0 or norm == 0:
                values.append(r0)
                continue
            moved = {n: params[n] - (t / norm) * vec[n].to(params[n].dtype) for n in names}
            values.append(float(toy.robust_loss(moved, resolution=s.toy_resolution)))
        lines[label] = [rounded(v) for v in values]
    t1 = ts[1]
    return {
        "at_iteration": s.toy_scan_at,
        "t": [rounded(t) for t in ts],
        "robust_loss_at_start": rounded(r0),
        "lines": lines,
        "first_step_change": {k: rounded(v[1] - v[0]) for k, v in lines.items()},
        "min_along": {k: rounded(min(v)) for k, v in lines.items()},
        "negative_pairs": negative_pairs(k),
        "first_step": rounded(t1),
        "ddi_weights": [rounded(v) for v in ddi.weights.tolist()],
    }


def plot_elu(elu: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    from problems.figures import fit_title, integer_ticks

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    for name in ("danskin", "ddi"):
        ax.plot(elu[name]["robust_loss"], lw=1.2, color=COLORS[name], label=RULE_LABELS[name])
    ax.set(xlabel="iteration", ylabel="exact robust loss (grid)")
    fit_title(ax, f"2-2-1 ELU network, n={elu['n']}, ε={elu['eps']:g}, m={elu['restarts']}")
    integer_ticks(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    scan = elu["scan"]
    for label, values in scan["lines"].items():
        style = dict(color=COLORS["ddi"], lw=2) if label == "DDi" else dict(lw=1, ls="--")
        ax2.plot(scan["t"], values, label=label, **style)
    ax2.set(xlabel="step length t along the unit direction", ylabel="exact robust loss")
    fit_title(ax2, f"line scans at Danskin's iterate {scan['at_iteration']}")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
