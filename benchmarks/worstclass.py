"""Worst-class digits (`minimax_problems.worstclass`: 10 classes, full batch, the 64-32-10 tanh
MLP): the cost of one step and whether the certified step keeps its promise.

Rules (SGD, no momentum): ERM (the mean loss), Danskin (the worst class's gradient), Group DRO
(Sagawa et al., η = 0.01), DDi (τ = 0.05, lr 0.3: the group Gram matrix in one forward and one
backward), DDi + Armijo (τ = 0.05; the search starts at lr 1.0 and halves, c = 1e-4) and
DDi + Armijo with a shrinking tolerance (τ₀ = 0.05, β = 0.5, κ = 1, τ_min = 1e-4).

Two parts, one process, one torch thread:

- timing: ``--reps`` repetitions; in each, the rules in a shuffled order, each running
  ``--timed-steps`` steps from a fresh model after untimed warm-up steps (1: the start of
  training, where the search backtracks most; ``--mid`` = 100: mid-training); per step the wall
  and CPU seconds of ``optimizer.step``. Per rule the median over every timed step, and the
  ratio to ERM as the median over repetitions of (rule's median / ERM's median in that
  repetition): the rules share the machine's state within a repetition.
- training: ``--steps`` steps per rule and seed (``--seeds``); per rule the passes per step and the
  fraction of steps after which the worst-class training loss R(θ) = max_c L_c went up
  (re-measured exactly: the inner max is `Enumerate`'s; for the certified steps this is the
  report's ``robust_loss_after``, which is R at the kept point).

Run: ./run python benchmarks/worstclass.py [--seeds 0 1 2] [--steps 200] [--reps 7]
[--out benchmarks/results/worstclass.json]

On a shared machine the CPU seconds are the better guide (the wall clock includes waiting).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import minimax as mm
from minimax_problems.data import digits as digits_data
from minimax_problems.worstclass import MeanLoss, _model

ROOT = Path(__file__).resolve().parents[1]

RULES: dict[str, Callable[[], tuple[mm.extend.Rule, float, mm.Armijo | None]]] = {
    "erm": lambda: (MeanLoss(), 0.3, None),
    "danskin": lambda: (mm.Danskin(), 0.3, None),
    "group_dro": lambda: (mm.GroupDRO(step_size=0.01), 0.3, None),
    "ddi": lambda: (mm.DDi(tolerance=0.05), 0.3, None),
    "ddi_armijo": lambda: (mm.DDi(tolerance=0.05), 1.0, mm.Armijo()),
    "ddi_armijo_shrink": lambda: (
        mm.DDi(tolerance=mm.ShrinkingTolerance(0.05, shrink=0.5, ratio=1.0, minimum=1e-4)),
        1.0,
        mm.Armijo(),
    ),
}


def _optimizer(name: str, seed: int, remeasure: bool = False) -> mm.MinMaxOptimizer:
    rule, lr, search = RULES[name]()
    problem = mm.WorstGroupProblem.from_module(_model(32, seed), 10)
    sgd = torch.optim.SGD(list(problem.parameters().values()), lr=lr)
    return mm.MinMaxOptimizer(
        problem, sgd, mm.Enumerate(), rule, step_size=search, remeasure=remeasure
    )


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = digits_data.load(seed=seed).train
    return x, y, y


def timing(reps: int, steps: int, seed: int = 0, warmup: int = 1) -> dict[str, Any]:
    """Per-step wall and CPU seconds of each rule, shuffled side by side (see the module)."""
    batch = _batch(seed)
    order = list(RULES)
    rng = random.Random(seed)
    wall: dict[str, list[float]] = {n: [] for n in order}
    cpu: dict[str, list[float]] = {n: [] for n in order}
    per_rep: list[dict[str, tuple[float, float]]] = []
    for _ in range(reps):
        rng.shuffle(order)
        rep: dict[str, tuple[float, float]] = {}
        for name in order:
            opt = _optimizer(name, seed)
            for _ in range(warmup):
                opt.step(batch)
            w, c = [], []
            for _ in range(steps):
                t0, c0 = time.perf_counter(), time.process_time()
                opt.step(batch)
                w.append(time.perf_counter() - t0)
                c.append(time.process_time() - c0)
            wall[name] += w
            cpu[name] += c
            rep[name] = (statistics.median(w), statistics.median(c))
        per_rep.append(rep)
    out = {}
    for name in RULES:
        out[name] = {
            "wall_ms": 1e3 * statistics.median(wall[name]),
            "cpu_ms": 1e3 * statistics.median(cpu[name]),
            "wall_ratio_erm": statistics.median(r[name][0] / r["erm"][0] for r in per_rep),
            "cpu_ratio_erm": statistics.median(r[name][1] / r["erm"][1] for r in per_rep),
        }
    return out


def training(seeds: list[int], steps: int) -> dict[str, Any]:
    """Passes per step and the went-up fraction of each rule over ``seeds`` (see the module)."""
    out: dict[str, Any] = {}
    for name in RULES:
        runs = []
        for seed in seeds:
            batch = _batch(seed)
            opt = _optimizer(name, seed, remeasure=True)
            up = trials = forward = backward = 0
            last = float("nan")
            for _ in range(steps):
                report = opt.step(batch)
                assert report.robust_loss_after is not None
                up += report.robust_loss_after > report.robust_loss
                trials += report.trials or 0
                forward += report.forward
                backward += report.backward
                last = report.robust_loss_after
            runs.append(
                {
                    "seed": seed,
                    "went_up_fraction": up / steps,
                    "forward_per_step": forward / steps,
                    "backward_per_step": backward / steps,
                    "trials_per_step": trials / steps,
                    "final_worst_class_train_loss": last,
                }
            )
        out[name] = {
            "runs": runs,
            **{key: statistics.mean(r[key] for r in runs) for key in runs[0] if key != "seed"},
            "max_backward_per_step": max(r["backward_per_step"] for r in runs),
        }
    return out


def table(result: dict[str, Any]) -> str:
    head = (
        f"{'rule':18} {'wall ms':>8} {'cpu ms':>7} {'wall/ERM':>8} {'cpu/ERM':>7} "
        f"{'mid cpu ms':>10} {'mid cpu/ERM':>11} {'fwd':>5} {'bwd':>5} {'trials':>6} "
        f"{'went up':>7} {'final R':>7}"
    )
    lines = [head]
    for name in RULES:
        t, r = result["timing"][name], result["training"][name]
        mid = result["timing_mid"][name]
        lines.append(
            f"{name:18} {t['wall_ms']:8.2f} {t['cpu_ms']:7.2f} {t['wall_ratio_erm']:8.2f} "
            f"{t['cpu_ratio_erm']:7.2f} {mid['cpu_ms']:10.2f} {mid['cpu_ratio_erm']:11.2f} "
            f"{r['forward_per_step']:5.2f} {r['backward_per_step']:5.2f} "
            f"{r['trials_per_step']:6.2f} {r['went_up_fraction']:7.3f} "
            f"{r['final_worst_class_train_loss']:7.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--timed-steps", type=int, default=20)
    ap.add_argument("--mid", type=int, default=100, help="warm-up steps of the mid-training timing")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "worstclass.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    digits_data.load()  # imports and the data file, outside the timings
    result = {
        "settings": vars(args),
        "timing": timing(args.reps, args.timed_steps, args.seeds[0]),
        "timing_mid": timing(args.reps, args.timed_steps, args.seeds[0], warmup=args.mid),
        "training": training(args.seeds, args.steps),
    }
    print(table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
