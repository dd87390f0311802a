"""Part 1 of the demo: the paper's counterexample φ(x) = x₁² + (|x₂| + 1)², Danskin vs DDi from
x = (1, 0), and one step along each rule's direction."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import minimax as mm

from ..toy import Counterexample, counterexample_phi
from ..training.rules import build_rule
from .common import (
    COLORS,
    RULE_LABELS,
    UP_TOL,
    DemoSettings,
    rounded,
)

__all__ = ["plot_counterexample", "run_counterexample"]


def run_counterexample(s: DemoSettings, seed: int) -> dict[str, Any]:
    """Paths of normalized Danskin and DDi from x = (1, 0), and the one-step table."""
    x0 = (1.0, 0.0)
    result: dict[str, Any] = {
        "start": list(x0),
        "step": s.ce_step,
        "iterations": s.ce_iterations,
        "restarts": s.ce_restarts,
    }
    for name in ("danskin", "ddi"):
        result[name] = _path(name, x0, s, seed)
    result["one_step"] = _one_step(x0, s, seed)
    return result


def _path(name: str, x0: tuple[float, float], s: DemoSettings, seed: int) -> dict[str, Any]:
    """``s.ce_iterations`` normalized steps of rule ``name`` from ``x0``: the path and φ on it."""
    rule = build_rule(name, normalize=True)
    toy = Counterexample(x0)
    inner = mm.PGD(10, 0.1, restarts=s.ce_restarts, seed=seed)
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
    return {
        "rule": repr(rule),
        "path": [[rounded(a), rounded(b)] for a, b in xs.tolist()],
        "phi": [rounded(v) for v in phi.tolist()],
        "phi_after_first_step": rounded(phi[1]),
        "final_phi": rounded(phi[-1]),
        "went_up_steps": ups,
        "steps_to_within_0.01": int(near[0]) if len(near) else None,
    }


def _one_step(x0: tuple[float, float], s: DemoSettings, seed: int) -> dict[str, Any]:
    """One step from ``x0`` along each rule's (unnormalized) direction, as the library returns
    it, against the closed forms 2 + 8η² (Danskin) and (1 − 2η)² + 1 (DDi)."""
    toy = Counterexample(x0)
    x = toy.params()["x"].detach().double()
    dirs = {}
    for name in ("danskin", "ddi"):
        inner = mm.PGD(10, 0.1, restarts=s.ce_restarts, seed=seed)
        dirs[name], cands = mm.descent_direction(
            toy.problem, None, toy.batch, inner, build_rule(name)
        )
    # DDi's weight on the candidates at y = 0 and at y = 1 (restarts that found the same y share)
    y = cands.deltas.reshape(-1).double()
    w = dirs["ddi"].weights.reshape(-1).double()
    d_dan = dirs["danskin"].vector["x"].detach().double()
    d_ddi = dirs["ddi"].vector["x"].detach().double()
    table = [
        {
            "eta": eta,
            "phi_danskin": rounded(counterexample_phi(x - eta * d_dan), 8),
            "closed_form_danskin": rounded(2 + 8 * eta**2, 8),
            "phi_ddi": rounded(counterexample_phi(x - eta * d_ddi), 8),
            "closed_form_ddi": rounded((1 - 2 * eta) ** 2 + 1, 8),
        }
        for eta in (0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
    ]
    gap = max(
        abs(r[f"phi_{rule}"] - r[f"closed_form_{rule}"])
        for r in table
        for rule in ("danskin", "ddi")
    )
    return {
        "danskin_direction": [rounded(v) for v in d_dan.tolist()],
        "ddi_direction": [rounded(v) for v in d_ddi.tolist()],
        "ddi_weights": [rounded(v) for v in dirs["ddi"].weights.tolist()],
        "candidates_y": [rounded(v) for v in y.tolist()],
        "ddi_weight_y0": rounded(float(w[y < 0.5].sum())),
        "ddi_weight_y1": rounded(float(w[y >= 0.5].sum())),
        "table": table,
        "max_gap_to_closed_form": float(f"{gap:.3g}"),
    }


def plot_counterexample(ce: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    from ..figures import fit_title, integer_ticks
    from ..files import save_figure

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
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
    ax.set(xlabel="x₁", ylabel="x₂")
    fit_title(ax, "φ(x) = x₁² + (|x₂|+1)²: paths, step 0.1")
    ax.legend(fontsize=8, loc="lower left")
    ax2.set(xlabel="iteration", ylabel="robust loss φ(x) (exact)")
    fit_title(ax2, "robust loss along the paths")
    integer_ticks(ax2)
    ax2.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    save_figure(fig, path, dpi=90)
    plt.close(fig)
