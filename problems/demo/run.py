"""Running the demo: the chosen parts in turn over the seeds, summary.json and report.html.

Public API::

    PARTS               every part, in the order they run (``--part`` choices)
    DEFAULT_PARTS       the parts a plain ``minimax demo`` runs
    run_demo(out, *, quick=False, seed=0, eps=0.1, progress=True, threads=1,
             parts=DEFAULT_PARTS, seeds=None)
        -> dict  (the summary, also written to out/summary.json)
    write_report(summary, out, figures) -> Path   (report.html)

To add a part: a runner ``(settings, seeds, eps, out, tick) -> (summary part, figures)`` in
`_RUNNERS` and its progress-bar steps per seed in `_STEPS`, then its name in `PARTS` (and in
`DEFAULT_PARTS` if a plain run should include it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..files import atomic_write_text
from ..report import write_html
from .common import DemoSettings
from .conflict import conflict_steps, plot_conflict, run_conflict, summarize_conflict
from .counterexample import plot_counterexample, run_counterexample
from .digits import DIGITS_PARTS, digits_steps, run_digits
from .digits_figures import plot_digits
from .findings import findings
from .tables import summary_tables
from .worstgroup import run_worstgroup, worstgroup_steps

__all__ = ["DEFAULT_PARTS", "ETA_CAVEAT", "PARTS", "run_demo", "write_report"]

#: printed above the progress bar
ETA_CAVEAT = (
    "minimax demo: the remaining-time estimate extrapolates the current speed; it changes "
    "with the machine's load (other processes, --threads)"
)

PARTS: tuple[str, ...] = ("counterexample", "elu", "worstclass", "digits", "digits-bn")
#: the ELU toy and ReLU + BatchNorm digits run on request (``--part``): see docs/reproducing.md
DEFAULT_PARTS: tuple[str, ...] = ("counterexample", "worstclass", "digits")


CAPTIONS = {
    "counterexample": "Left: contour of φ(x) = max_y f(x, y) = x₁² + (|x₂|+1)² with the paths of "
    "normalized Danskin and DDi steps from (1, 0), candidates from 10 restarts of 10-step "
    "projected ascent on y. Right: the exact φ along each path.",
    "elu": "Left: exact robust loss (grid enumeration) of the paper's 2-2-1 ELU network trained "
    "by Danskin and by DDi with the paper's candidates (m random corners of the box, 10 plain "
    "ascent steps of 0.1 on the batch mean) and per-tensor normalized steps, every seed. Right: "
    "candidate pairs with a negative inner product per step (10-step mean), first seed.",
}


def write_report(
    summary: Mapping[str, Any], out: Path, figures: Sequence[tuple[str, str, str]]
) -> Path:
    """report.html through `problems.report.write_html`: tables, then each figure with the
    findings about it."""
    said = findings(summary)
    sections = []
    for heading, filename, key in figures:
        text = said.get(key, [])
        if key.startswith("digits_"):  # the part's setup goes with each setting's first figure
            part = "digits-bn" if key == "digits_relu_bn" else "digits"
            text = said.get(part, []) + text
        caption = " ".join([CAPTIONS.get(key, ""), *text]).strip()
        sections.append((heading, filename, caption))
    cfg = summary["config"]
    intro = (
        f"minimax demo, seeds {', '.join(map(str, cfg['seeds']))}, "
        f"{'quick' if cfg['quick'] else 'full'} run, "
        f"L∞ ε = {cfg['eps']:g} on the digits. Every number and sentence below is "
        f"generated from this run (summary.json holds the numbers). "
        + " ".join(said.get("quick", []))
    ).strip()
    return write_html(
        out / "report.html",
        "minimax demo: Danskin's Descent Direction (DDi)",
        sections,
        summary_tables(summary),
        intro=intro,
    )


Figures = list[tuple[str, str, str]]  # (heading, file name, findings key) per figure


class _Ticker:
    """Advances the progress bar by one step, naming the part that runs."""

    def __init__(self, bar: tqdm) -> None:
        self.bar, self.label = bar, ""

    def __call__(self, label: str) -> None:
        if self.bar.n == 0 or self.label != label:
            self.bar.set_description(label)
            self.label = label
        self.bar.update(1)


def _counterexample(
    s: DemoSettings, seeds: Sequence[int], eps: float, out: Path, tick: _Ticker
) -> tuple[dict[str, Any], Figures]:
    tick.bar.set_description("counterexample")
    ce = run_counterexample(s, seeds[0])
    tick.bar.update(2 * s.ce_iterations)
    plot_counterexample(ce, out / "counterexample.png")
    return ce, [("The counterexample", "counterexample.png", "counterexample")]


def _elu(
    s: DemoSettings, seeds: Sequence[int], eps: float, out: Path, tick: _Ticker
) -> tuple[dict[str, Any], Figures]:
    part = summarize_conflict([run_conflict(s, seed, tick) for seed in seeds])
    plot_conflict(part["runs"], out / "elu_toy.png")
    return part, [("The paper's ELU network toy", "elu_toy.png", "elu")]


def _worstclass(
    s: DemoSettings, seeds: Sequence[int], eps: float, out: Path, tick: _Ticker
) -> tuple[dict[str, Any], Figures]:
    tick.bar.set_description("worst-class digits")
    return run_worstgroup(s, seeds, tick.bar.update), [("Worst-class digits", "", "worstclass")]


def _digits(
    s: DemoSettings, seeds: Sequence[int], eps: float, out: Path, tick: _Ticker
) -> tuple[dict[str, Any], Figures]:
    dg = run_digits(s, seeds, eps, out / "runs", tick, DIGITS_PARTS["digits"])
    return dg, plot_digits(dg, out)


def _digits_bn(
    s: DemoSettings, seeds: Sequence[int], eps: float, out: Path, tick: _Ticker
) -> tuple[dict[str, Any], Figures]:
    dg = run_digits(s, seeds, eps, out / "runs", tick, DIGITS_PARTS["digits-bn"])
    return dg, plot_digits(dg, out)


_RUNNERS: dict[str, Callable[..., tuple[dict[str, Any], Figures]]] = {
    "counterexample": _counterexample,
    "elu": _elu,
    "worstclass": _worstclass,
    "digits": _digits,
    "digits-bn": _digits_bn,
}
#: per part, the progress-bar steps of one seed (the counterexample runs once: see _total_steps)
_STEPS: dict[str, Callable[[DemoSettings], int]] = {
    "counterexample": lambda s: 0,
    "elu": conflict_steps,
    "worstclass": worstgroup_steps,
    "digits": lambda s: digits_steps(s, DIGITS_PARTS["digits"]),
    "digits-bn": lambda s: digits_steps(s, DIGITS_PARTS["digits-bn"]),
}


def _total_steps(s: DemoSettings, parts: Sequence[str], seeds: int) -> int:
    """Outer steps of the chosen parts (the progress bar's length)."""
    once = 2 * s.ce_iterations if "counterexample" in parts else 0
    return once + seeds * sum(_STEPS[part](s) for part in parts)


# long: the argument checks, the config record and the timed loop over the parts, in order
def run_demo(
    out: str | os.PathLike[str] = "demo-report",
    *,
    quick: bool = False,
    seed: int = 0,
    eps: float = 0.1,
    progress: bool = True,
    threads: int | None = 1,
    parts: Sequence[str] = DEFAULT_PARTS,
    seeds: int | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary (also written to ``summary.json``).

    ``seeds``: how many seeds (``seed``, ``seed + 1``, ...) every comparison runs over (default:
    `DemoSettings.seeds`, 3 in a full run, 2 with ``quick``); the counterexample is exact and
    runs once. ``parts``: names from `PARTS` (default `DEFAULT_PARTS`)."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if isinstance(parts, str) or not parts:
        raise ValueError(f"parts must be a non-empty list of part names from {', '.join(PARTS)}")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown demo parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    s = DemoSettings.quick() if quick else DemoSettings.full()
    n_seeds = s.seeds if seeds is None else seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    seed_list = list(range(seed, seed + n_seeds))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "seed": seed,
        "seeds": seed_list,
        "quick": quick,
        "eps": eps,
        "threads": threads,
        "parts": [p for p in PARTS if p in parts],
        "settings": dict(vars(s)),
    }
    summary: dict[str, Any] = {"config": config, "timings": {}}
    figures: Figures = []
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    total = _total_steps(s, parts, n_seeds)
    bar = tqdm(total=total, desc="demo", unit="step", disable=not progress, dynamic_ncols=True)
    if progress:  # tqdm's estimate extrapolates the current speed: it was off ×10 under load
        bar.write(ETA_CAVEAT, file=sys.stderr)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    try:
        for part in PARTS:
            if part in parts:
                t0 = time.perf_counter()
                summary[part], part_figures = _RUNNERS[part](s, seed_list, eps, out, _Ticker(bar))
                figures.extend(part_figures)
                summary["timings"][part] = round(time.perf_counter() - t0, 2)
    finally:
        bar.close()
        torch.set_num_threads(saved_threads)
    summary["timings"]["total"] = round(time.perf_counter() - t_start, 2)
    # CPU seconds of this process, every thread: what the run costs, whatever the machine's load
    summary["timings"]["cpu_total"] = round(time.process_time() - cpu_start, 2)
    text = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
    atomic_write_text(out / "summary.json", text)
    write_report(summary, out, figures)
    return summary
