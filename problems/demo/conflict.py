"""The paper's 2-2-1 ELU toy in the paper's own setting, where candidate gradients conflict.

The setting of the paper's toy script (Latorre et al. 2023, reference code ``acat/toy.py``, read
and re-written here): a 2-2-1 network sigmoid(w₂·elu(W₁x + b₁)) (no output bias, every weight
drawn from 0.2·N(0, 1)), binary cross-entropy on n = 100 Gaussian points labelled 1[x₁ > 0], L∞
radius ε = 1. Each outer step draws m = 10 candidates at random corners of the box ε·sign(N(0, 1))
and takes 10 steps of plain gradient ascent of the *mean* loss with step 0.1 (so each example
moves by 0.1/n times its own gradient: the candidates barely leave their corners), then
steps every parameter tensor by 0.01 along its own normalized direction, 500 times.

Because the candidates are random corners rather than maximizers, their gradients point in
different directions: this is where DDi and the single gradient differ. `VARIANTS` re-runs the
conflict count with a real inner maximizer (signed PGD) at the same θ, every
``toy_probe_every`` steps, to show what changes the outcome.

Public API::

    CornerAscent(restarts, steps, step_size, seed)   the paper's inner solver
    PaperELU(seed)                                   the paper's network and data (a `Toy`)
    run_conflict(s, seed, tick) -> dict              Danskin vs DDi, exact robust loss, conflicts
    summarize_conflict(runs) -> dict                 over seeds: 95% intervals, paired tests
    conflict_steps(s) -> int                         progress-bar steps per seed
    plot_conflict(part, path)
    exact_descent(seed, rule, iterations, lr) -> (start, end)
        the exact robust loss before and after normalized steps with exact (grid) candidates

Why the toy is not in the default demo: at ε = 1 on these points the constant prediction 1/2
(robust loss log 2) is about the best a robust classifier does; with exact candidates
(`exact_descent`) every rule reaches it within a few dozen steps and the rules cannot differ,
and with the paper's candidates the exact robust loss rises.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Generator, Tensor, nn

import minimax as mm
from minimax.toys import bce_per_example

from ..stats import mean_interval, paired_difference
from ..toy import ELUNetwork
from .common import COLORS, RULE_LABELS, UP_TOL, DemoSettings, rounded

__all__ = [
    "METRICS",
    "CornerAscent",
    "PaperELU",
    "conflict_steps",
    "exact_descent",
    "plot_conflict",
    "real_inner_max",
    "run_conflict",
    "summarize_conflict",
]


class CornerAscent(mm.extend.InnerSolver):
    """The paper's toy inner solver: m starts at random corners ε·sign(N(0, 1)) of the L∞ box,
    then ``steps`` steps δ ← clip(δ + step_size·∇_δ mean_b g) (plain gradient of the batch mean,
    not signed), clipped to [−ε, ε]."""

    def __init__(
        self, restarts: int = 10, steps: int = 10, step_size: float = 0.1, seed: int | None = 0
    ) -> None:
        super().__init__(restarts=restarts, random_start=True, seed=seed)
        self.steps, self.step_size = steps, step_size

    def __repr__(self) -> str:
        return (
            f"CornerAscent(restarts={self.restarts}, steps={self.steps}, "
            f"step_size={self.step_size})"
        )

    def search(
        self,
        engine: mm.Engine,
        params: Mapping[str, Tensor],
        batch: Any,
        generator: Generator | None,
    ) -> mm.extend.Candidates:
        problem = engine.problem
        ball = problem.perturbation
        if not isinstance(ball, mm.LinfBall):
            raise TypeError(f"CornerAscent needs an LinfBall, got {ball!r}")
        eps = float(ball.eps)
        shape = (self.restarts, *problem.delta_shape(batch))
        gen = generator if generator is not None else self.generator
        deltas = eps * torch.randn(shape, generator=gen).sign()
        n = shape[1]
        for _ in range(self.steps):
            _, g = engine.values_and_input_grad(params, deltas, batch)
            deltas = (deltas + self.step_size * g / n).clamp(-eps, eps)
        with torch.no_grad():
            values = engine.values(params, deltas, batch)
        return mm.extend.Candidates(deltas.detach(), values.detach())


class PaperELU(ELUNetwork):
    """The paper's toy network sigmoid(w₂·elu(W₁x + b₁)), weights 0.2·N(0, 1), no output bias;
    the data, ε and the exact (grid) robust loss of `problems.toy.ELUNetwork`."""

    def __init__(self, n: int = 100, eps: float = 1.0, seed: int = 0) -> None:
        super().__init__(n=n, eps=eps, seed=seed)
        g = torch.Generator().manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(2, 2), nn.ELU(), nn.Linear(2, 1, bias=False))
        with torch.no_grad():
            for p in self.model.parameters():
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        self.problem = mm.ModuleProblem(self.model, bce_per_example, mm.LinfBall(eps))


def real_inner_max(s: DemoSettings, seed: int) -> mm.extend.InnerSolver:
    """The probe: m restarts of signed PGD with step ε/4 (a real inner maximizer), run at the
    same θ as the paper's solver to count its conflicts."""
    return mm.PGD(s.toy_pgd_steps, 0.25, restarts=s.toy_restarts, seed=seed + 1)


def conflict_steps(s: DemoSettings) -> int:
    """Progress-bar steps of one seed: both rules' iterations."""
    return 2 * s.toy_iterations


def _negative_fraction(k: Tensor) -> tuple[int, int]:
    """(pairs i < j with K_ij < 0, all pairs) of a Gram matrix K [m, m]."""
    iu = torch.triu_indices(k.shape[0], k.shape[1], 1)
    return int((k[iu[0], iu[1]] < 0).sum()), int(iu.shape[1])


def _train(name: str, s: DemoSettings, seed: int, tick: Callable[[str], None]) -> dict[str, Any]:
    """``s.toy_iterations`` per-tensor normalized steps of rule ``name`` on the paper's toy with
    the paper's candidates; the exact robust loss every ``s.toy_eval_every`` steps, the
    conflicting pairs of every step, and those of `real_inner_max` every ``s.toy_probe_every``."""
    toy = PaperELU(seed=seed)
    params, batch = toy.params(), toy.batch
    rule = mm.DDi() if name == "ddi" else mm.Danskin()
    inner = CornerAscent(s.toy_restarts, s.toy_pgd_steps, 0.1, seed=seed)
    probe = real_inner_max(s, seed)
    iterations = s.toy_iterations
    losses, at, negative, pairs, steps_with = [], [], 0, 0, 0
    per_step: list[int] = []
    late_negative = late_pairs = probe_negative = probe_pairs = 0
    for it in range(iterations + 1):
        if it % s.toy_eval_every == 0 or it == iterations:
            losses.append(float(toy.robust_loss(resolution=s.toy_resolution)))
            at.append(it)
        if it == iterations:
            break
        cands = inner(toy.problem, params, batch)
        grads = mm.linalg.candidate_gradients(toy.problem, params, batch, cands.deltas)
        neg, total = _negative_fraction(mm.linalg.gram(grads))
        negative, pairs, steps_with = negative + neg, pairs + total, steps_with + int(neg > 0)
        per_step.append(neg)
        if it >= iterations // 5:
            late_negative, late_pairs = late_negative + neg, late_pairs + total
        if it % s.toy_probe_every == 0:
            real = probe(toy.problem, params, batch)
            counts = _negative_fraction(
                mm.linalg.gram(
                    mm.linalg.candidate_gradients(toy.problem, params, batch, real.deltas)
                )
            )
            probe_negative, probe_pairs = probe_negative + counts[0], probe_pairs + counts[1]
        d = rule(toy.problem, params, batch, cands).vector
        with torch.no_grad():
            for key, p in params.items():
                norm = d[key].norm()
                if norm > 0:
                    p -= s.toy_lr * d[key].to(p.dtype) / norm
        tick(f"ELU toy {name}")
    return {
        "robust_loss": [rounded(v) for v in losses],
        "robust_loss_at": at,
        "final_robust_loss": rounded(losses[-1]),
        "best_robust_loss": rounded(min(losses)),
        "went_up_evals": sum(b > a + UP_TOL for a, b in itertools.pairwise(losses)),
        "negative_pairs": negative,
        "pairs": pairs,
        "negative_fraction": rounded(negative / max(pairs, 1)),
        "late_negative_fraction": rounded(late_negative / max(late_pairs, 1)),
        "late_from": iterations // 5,
        "probe_negative_pairs": probe_negative,
        "probe_pairs": probe_pairs,
        "probe_negative_fraction": rounded(probe_negative / max(probe_pairs, 1)),
        "steps_with_negative": steps_with,
        "negative_per_step": per_step,
    }


def run_conflict(s: DemoSettings, seed: int, tick: Callable[[str], None]) -> dict[str, Any]:
    """One seed: Danskin and DDi trained in the paper's setting from the same initialization,
    with their exact robust loss and conflict counts."""
    return {
        "seed": seed,
        "iterations": s.toy_iterations,
        "restarts": s.toy_restarts,
        "inner_steps": s.toy_pgd_steps,
        "lr": s.toy_lr,
        "resolution": s.toy_resolution,
        "eval_every": s.toy_eval_every,
        "probe_every": s.toy_probe_every,
        "n": 100,
        "eps": 1.0,
        "rules": {name: _train(name, s, seed, tick) for name in ("danskin", "ddi")},
    }


#: the toy's compared numbers → True when higher is better (None: described, not compared)
METRICS: dict[str, bool | None] = {
    "final_robust_loss": False,
    "best_robust_loss": False,
    "negative_fraction": None,
    "late_negative_fraction": None,
    "probe_negative_fraction": None,
}


def summarize_conflict(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Over seeds: per rule the mean and 95% interval of each `METRICS` entry; DDi − Danskin
    paired on the compared ones."""
    rules = {
        r: {m: mean_interval([run["rules"][r][m] for run in runs]) for m in METRICS}
        for r in ("danskin", "ddi")
    }
    paired = {
        "danskin": {
            m: paired_difference(
                [run["rules"]["ddi"][m] for run in runs],
                [run["rules"]["danskin"][m] for run in runs],
                better,
            )
            for m, better in METRICS.items()
            if better is not None
        }
    }
    return {
        "seeds": [run["seed"] for run in runs],
        "runs": list(runs),
        "rules": rules,
        "paired": paired,
    }


def plot_conflict(runs: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Left: exact robust loss against iteration, every seed, both rules. Right: conflicting
    candidate pairs per step (mean over a 10-step window), first seed."""
    import matplotlib.pyplot as plt

    from ..files import save_figure

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    first = runs[0]
    for i, run in enumerate(runs):
        for name in ("danskin", "ddi"):
            res = run["rules"][name]
            label = RULE_LABELS[name] if i == 0 else None
            ax.plot(
                res["robust_loss_at"],
                res["robust_loss"],
                lw=1.1,
                alpha=0.8,
                color=COLORS[name],
                label=label,
            )
    for name in ("danskin", "ddi"):
        per_step = torch.tensor(first["rules"][name]["negative_per_step"], dtype=torch.float64)
        window = min(10, len(per_step))
        smooth = per_step.unfold(0, window, 1).mean(-1)
        ax2.plot(
            range(window - 1, len(per_step)),
            smooth.tolist(),
            lw=1.2,
            color=COLORS[name],
            label=f"{RULE_LABELS[name]}'s path",
        )
    pairs = first["restarts"] * (first["restarts"] - 1) // 2
    ax.set(
        xlabel="iteration",
        ylabel="exact robust loss (grid)",
        title=f"paper's 2-2-1 ELU toy, {len(runs)} seeds",
    )
    ax2.set(
        xlabel="iteration",
        ylabel=f"pairs with ⟨g_i, g_j⟩ < 0 (of {pairs})",
        title=f"conflicting candidate gradients, seed {first['seed']}",
    )
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def exact_descent(
    seed: int, rule: mm.extend.Rule, iterations: int = 50, lr: float = 0.01
) -> tuple[float, float]:
    """The paper's toy trained by ``rule`` with exact candidates (`minimax.Grid`: the 4 best
    local maxima per example on a 41² grid) and per-tensor normalized steps of ``lr``; returns
    the exact robust loss (51² grid) before and after ``iterations`` steps."""
    toy = PaperELU(seed=seed)
    params, batch = toy.params(), toy.batch
    inner = mm.Grid(points=41, candidates=4, tol=1e-6)
    start = float(toy.robust_loss(resolution=51))
    for _ in range(iterations):
        d = rule(toy.problem, params, batch, inner(toy.problem, params, batch)).vector
        with torch.no_grad():
            for key, p in params.items():
                norm = d[key].norm()
                if norm > 0:
                    p -= lr * d[key].to(p.dtype) / norm
    return start, float(toy.robust_loss(resolution=51))
