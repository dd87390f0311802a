"""``minimax compare``: plots and a report.html over several training runs."""

from __future__ import annotations

import argparse
import textwrap

from ..extras import MissingExtraError, require
from .types import UsageError, path

__all__ = ["DESCRIPTION", "EPILOG", "HELP", "add_arguments", "run"]

HELP = "plot and tabulate several runs"
DESCRIPTION = "Compare training runs: PNG plots and report.html."
EPILOG = textwrap.dedent(
    """\
    examples:
      minimax compare runs/pgd-at runs/maxloss runs/ddi --out reports/cifar10
      minimax compare runs/a runs/b --names PGD-AT,DDi --out reports/ab
    writes robust / clean accuracy against epoch and against wall-clock, the loss curves, the
    went-up fraction (runs trained with --remeasure), the runs' eval-*.json results (written by
    `minimax evaluate` into a run directory) as PNGs, and report.html, into --out. Each run has
    its own colour, line style and marker. Needs matplotlib: pip install 'minimax[demo]'.
    """
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``minimax compare``."""
    parser.add_argument("runs", nargs="+", type=path, metavar="RUN_DIR")
    parser.add_argument("--out", type=path, required=True, help="output directory")
    parser.add_argument("--names", default=None, help="comma-separated labels, one per run")


def run(args: argparse.Namespace) -> int:
    """Write the comparison; print the report's path."""
    try:
        require("matplotlib", "minimax compare")
    except MissingExtraError as error:
        raise UsageError(str(error)) from None
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    if names is not None and len(names) != len(args.runs):
        raise UsageError(f"--names has {len(names)} labels for {len(args.runs)} runs")
    for run_dir in args.runs:
        if not (run_dir / "config.json").is_file():
            raise UsageError(f"{run_dir} is not a training run directory (no config.json)")
    from ..comparison import compare_runs  # matplotlib: imported only when it is there

    try:
        report = compare_runs(args.runs, args.out, names=names)
    except ValueError as error:  # a corrupt config.json / metrics.jsonl: the message names it
        raise UsageError(str(error)) from None
    print(str(report))
    return 0
