"""The PGD attack's throughput: `minimax.PGD` through `minimax.ModuleProblem` against a plain
textbook loop (requires_grad, loss, backward, sign step, clamp) on the same model and batch, timed
side by side in interleaved repetitions (section 2 of ``benchmarks/cifar10.py``, which runs it
and publishes its table).

Public API::

    textbook_pgd(model, x, y, eps, alpha, steps, generator, score=False) -> delta
    step_seconds(x, reps=200) -> (minimax, textbook)   one ascent step + projection (medians)
    bench_attack(model_name, *, steps, batch, reps, device, **model_kwargs) -> dict
    paired_ratio(reference, ours) -> {"median", "interval", "n"}   sign-test interval (95%)
"""

from __future__ import annotations

import random
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import minimax
from benchmarks.cifar_setup import ALPHA, EPS, cifar_batch, seeded_model, sync
from minimax.sets.arguments import trusted
from minimax.sets.steps import projected_step

__all__ = ["bench_attack", "paired_ratio", "step_seconds", "textbook_pgd"]


def textbook_pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    alpha: float,
    steps: int,
    generator: torch.Generator,
    score: bool = False,
) -> Tensor:
    """The plain PGD loop: random start, then `steps` signed-gradient steps with clamping.

    ``score=True`` adds one forward at the result for the per-example losses [B], which
    `minimax.PGD` always computes (the candidates' values): the same work as minimax.
    """
    delta = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x + delta), y)
        loss.backward()
        with torch.no_grad():
            delta = delta + alpha * delta.grad.sign()  # type: ignore[union-attr]
            delta = delta.clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    if score:
        with torch.no_grad():
            nn.functional.cross_entropy(model(x + delta), y, reduction="none")
    return delta.detach()


def _minor_faults() -> int:
    """Minor page faults of this process so far (first touches of fresh memory pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def step_seconds(x: Tensor, reps: int = 200) -> tuple[float, float]:
    """Median seconds of one ascent step + projection outside the model: the set's update as
    minimax.PGD runs it (`minimax.sets.steps.projected_step`, built once per search) and the
    textbook's three lines, on tensors shaped like x."""
    ball = minimax.LinfBall(EPS, lower=0.0, upper=1.0)
    gen = torch.Generator(device=x.device).manual_seed(0)
    delta = ((torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * EPS).unsqueeze(0)
    grad = torch.randn(delta.shape, generator=gen, device=x.device)
    event = x.ndim - 1

    step = projected_step(ball, x, ALPHA, event)

    def ours() -> None:
        step(delta, grad)

    def textbook() -> None:
        d = (delta + ALPHA * grad.sign()).clamp(-EPS, EPS)
        (x + d).clamp(0, 1) - x

    out = []
    with trusted():  # as inside an inner solver's call
        for fn in (ours, textbook):
            times = []
            for _ in range(reps):
                sync(x.device)
                t0 = time.perf_counter()
                fn()
                sync(x.device)
                times.append(time.perf_counter() - t0)
            out.append(statistics.median(times))
    return out[0], out[1]


def bench_attack(
    model_name: str,
    *,
    steps: int,
    batch: int,
    reps: int,
    device: torch.device,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """minimax.PGD (m = 1) against `textbook_pgd`, interleaved in a shuffled order per
    repetition; medians, the ratios, paired ratios with intervals and an A/A control."""
    model = seeded_model(model_name, device, **model_kwargs).eval()
    for p in model.parameters():
        p.requires_grad_(False)  # the textbook loop then needs no parameter gradients either
    x, y = cifar_batch(batch, device, seed=1)
    problem = minimax.ModuleProblem(model, perturbation=minimax.LinfBall(EPS, lower=0.0, upper=1.0))
    pgd = minimax.PGD(steps, ALPHA, restarts=1, seed=0)
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(0)

    def run_minimax() -> None:
        pgd(problem, params, (x, y))

    def run_textbook() -> None:
        textbook_pgd(model, x, y, EPS, ALPHA, steps, gen)

    def run_scored() -> None:
        textbook_pgd(model, x, y, EPS, ALPHA, steps, gen, score=True)

    # "scored again" runs the same loop as "scored": their paired ratio (an A/A control) shows
    # what this harness reads as a difference when there is none.
    order = [
        ("minimax", run_minimax),
        ("textbook", run_textbook),
        ("scored", run_scored),
        ("scored again", run_scored),
    ]
    times, faults = _interleaved(order, reps, device)
    mm = statistics.median(times["minimax"])
    step_ours, step_textbook = step_seconds(x)
    return {
        "iteration_seconds": mm / (steps + 1),
        "step_seconds_minimax": step_ours,
        "step_seconds_textbook": step_textbook,
        **_comparison(times, faults, batch),
        "model": model_name,
        "pgd_steps": steps,
        "batch": batch,
        "reps": reps,
        "device": str(device),
    }


def _interleaved(
    order: list[tuple[str, Callable[[], None]]], reps: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """One warm-up call of each, then ``reps`` repetitions, each in a fresh shuffled order (no
    kind always follows the same one): seconds and minor page faults per call, by name."""
    for _, fn in order:  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name, _ in order}
    faults: dict[str, list[int]] = {name: [] for name, _ in order}
    shuffle = random.Random(0).shuffle
    for _ in range(reps):
        shuffled = list(order)
        shuffle(shuffled)
        for name, fn in shuffled:
            sync(device)
            f0, t0 = _minor_faults(), time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            faults[name].append(_minor_faults() - f0)
    return times, faults


def _comparison(
    times: dict[str, list[float]], faults: dict[str, list[int]], batch: int
) -> dict[str, Any]:
    """Medians, minima, their ratios, the paired ratios with intervals (the A/A control: the
    scored loop against itself) and the page faults (min, median, max) of `bench_attack`."""
    mm, tb = statistics.median(times["minimax"]), statistics.median(times["textbook"])
    sc = statistics.median(times["scored"])
    bare = paired_ratio(times["textbook"], times["minimax"])
    same = paired_ratio(times["scored"], times["minimax"])
    control = paired_ratio(times["scored"], times["scored again"])
    spread = lambda v: [min(v), statistics.median(v), max(v)]  # noqa: E731
    return {
        "minor_faults_minimax": spread(faults["minimax"]),
        "minor_faults_textbook_scored": spread(faults["scored"]),
        "control_ratio": control["median"],
        "control_ratio_interval": control["interval"],
        "paired_ratio": bare["median"],
        "paired_ratio_interval": bare["interval"],
        "paired_ratio_same_work": same["median"],
        "paired_ratio_same_work_interval": same["interval"],
        "minimax_seconds": mm,
        "textbook_seconds": tb,
        "ratio": tb / mm,
        "textbook_scored_seconds": sc,
        "ratio_same_work": sc / mm,
        "minimax_min_seconds": min(times["minimax"]),
        "textbook_min_seconds": min(times["textbook"]),
        "ratio_of_minima": min(times["textbook"]) / min(times["minimax"]),
        "minimax_images_per_second": batch / mm,
        "textbook_images_per_second": batch / tb,
    }


def paired_ratio(reference: list[float], ours: list[float]) -> dict[str, Any]:
    """Median of the per-repetition ratios reference / ours (each pair ran back to back, so a
    load change on this shared machine hits both) and a 95% distribution-free interval for that
    median: order statistics whose binomial coverage is ≥ 95% (the sign-test interval)."""
    from scipy.stats import binom

    ratios = sorted(r / o for r, o in zip(reference, ours))
    n = len(ratios)
    k = int(binom.ppf(0.025, n, 0.5))  # the smallest k with P(Bin ≤ k) ≥ 2.5%: P(Bin ≤ k−1) < 2.5%
    low, high = (ratios[k - 1], ratios[n - k]) if k >= 1 else (ratios[0], ratios[-1])
    return {"median": statistics.median(ratios), "interval": [low, high], "n": n}
