"""``python -m minimax_problems.worstgroup``: run the worst-group comparison, write its JSON and
figures.

    python -m minimax_problems.worstgroup                       # both data sets, 1 thread, 5 seeds
    python -m minimax_problems.worstgroup --threads 2           # the same with 2 torch threads
    python -m minimax_problems.worstgroup --dataset adult --tiny --out /tmp/wg   # seconds

Writes ``OUT/worstgroup-DATASET.json`` (``-threadsN`` added for N ≠ 1) and, with 1 thread,
``FIGURES/worstgroup-DATASET-curves.png`` and ``-accuracy.png``. Then
``python -m minimax_problems.worstgroup.publish`` rewrites the generated blocks of the docs.

Public API::

    result_path(out, dataset, threads) -> Path
    main(argv) -> int
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write_text
from .compare import DATASETS, CompareSettings, compare

__all__ = ["main", "result_path"]

ROOT = Path(__file__).resolve().parents[2]


def result_path(out: Path, dataset: str, threads: int) -> Path:
    """Where a run's JSON goes: ``worstgroup-DATASET.json``, or ``-threadsN`` for N ≠ 1."""
    suffix = "" if threads == 1 else f"-threads{threads}"
    return out / f"worstgroup-{dataset}{suffix}.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minimax_problems.worstgroup", description=__doc__
    )
    parser.add_argument("--dataset", choices=(*DATASETS, "all"), default="all")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds 0..N-1 (default 5; --tiny: 2)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results", help="JSON folder")
    parser.add_argument(
        "--figures", type=Path, default=ROOT / "docs/img", help="figure folder (1 thread only)"
    )
    parser.add_argument("--tiny", action="store_true", help="seconds: tests and smoke runs")
    parser.add_argument("--cache-dir", default=None, help="where MNIST-1D's arrays are cached")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison on the chosen data sets; 0 on success."""
    args = _parser().parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be ≥ 1, got {args.threads}")
    if args.seeds is not None and not 2 <= args.seeds <= 100:
        raise SystemExit(f"--seeds must be in 2..100 (intervals need 2), got {args.seeds}")
    torch.set_num_threads(args.threads)
    datasets = DATASETS if args.dataset == "all" else (args.dataset,)
    args.out.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        build = CompareSettings.tiny if args.tiny else CompareSettings.full
        changes: dict[str, Any] = {"cache_dir": args.cache_dir}
        if args.seeds is not None:
            changes["seeds"] = tuple(range(args.seeds))
        settings = build(dataset, **changes)
        t0 = time.perf_counter()
        result = compare(settings, progress=lambda s: print(s, file=sys.stderr, flush=True))
        result["config"]["threads"] = args.threads
        result["config"]["tiny"] = bool(args.tiny)
        result["config"]["command"] = "python -m minimax_problems.worstgroup " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        path = result_path(args.out, dataset, args.threads)
        atomic_write_text(path, json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        if args.threads == 1:
            from .figures import plot_accuracy, plot_curves  # matplotlib

            args.figures.mkdir(parents=True, exist_ok=True)
            plot_curves(result, args.figures / f"worstgroup-{dataset}-curves.png")
            plot_accuracy(result, args.figures / f"worstgroup-{dataset}-accuracy.png")
        took = time.perf_counter() - t0
        print(f"{path} ({took:.0f} s, {result['timings']['cpu_seconds']:.0f} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
