"""``minimax demo``: the offline demo (`problems.demo`): options, run, the summary table."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..extras import MissingExtraError, require
from .types import (
    UsageError,
    bounded_int,
    nonnegative_int,
    path,
    positive_number,
    random_seed,
)

#: the demo's parts (as `problems.demo.run`; repeated here so that --help needs no matplotlib)
PARTS = ("counterexample", "elu", "worstclass", "digits", "digits-bn")
DEFAULT_PARTS = ("counterexample", "worstclass", "digits")

__all__ = ["DESCRIPTION", "EPILOG", "HELP", "add_arguments", "run"]

HELP = "the offline demo: the paper's claims, compared over several seeds"
DESCRIPTION = None
EPILOG = (
    "Runs the paper's counterexample (exact), worst-class training on scikit-learn's 8x8 digits "
    "(ERM / Danskin / DDi / Group DRO), and adversarial training of a small CNN (CELU, no "
    "BatchNorm) on the digits by Danskin (PGD-AT), MaxLoss, DDi, per-example DDi and DDi with "
    "the certified step, each comparison over --seeds seeds with 95% intervals and paired "
    "t-tests. A few minutes on a CPU: it trains 15 small CNNs (--quick: seconds, too short "
    "to compare the rules). On request (--part): elu, the paper's 2-2-1 ELU toy, and digits-bn, "
    "the digits with ReLU + BatchNorm. Writes PNG figures, report.html and summary.json to "
    "--out, and prints the summary tables. Needs matplotlib and scikit-learn: "
    "pip install 'minimax[demo]'.\n\n"
    "examples:\n"
    "  minimax demo                          # full run into demo-report/\n"
    "  minimax demo --quick --out /tmp/demo  # smoke run, seconds\n"
    "  minimax demo --seed 1 --eps 0.05      # seeds 1, 2, 3; a smaller L-inf radius\n"
    "  minimax demo --seeds 5                # five seeds: narrower intervals, longer run\n"
    "  minimax demo --part digits-bn         # only the ReLU + BatchNorm digits\n"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``minimax demo``."""
    parser.add_argument(
        "--out",
        type=path,
        default="demo-report",
        help="folder for the figures, report.html and summary.json (default: demo-report)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small version that runs in seconds (tests, smoke runs; too short to compare)",
    )
    parser.add_argument(
        "--seed",
        type=random_seed,
        default=0,
        help="seed of every random choice (same seed, same summary.json apart "
        "from wall-clock fields)",
    )
    parser.add_argument(
        "--seeds",
        type=bounded_int(1, 100, "each seed trains every model again"),
        default=None,
        help="how many seeds (--seed, --seed + 1, ...) each comparison runs over; the report "
        "gives means with 95%% intervals and paired t-tests (default 3; --quick: 2)",
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
        "--part",
        dest="parts",
        action="append",
        choices=PARTS,
        default=None,
        metavar="NAME",
        help=f"run only this part (repeat for several; choices: {', '.join(PARTS)}; default: "
        f"{', '.join(DEFAULT_PARTS)})",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``minimax demo`` with parsed ``args``; prints the summary table; returns 0."""
    try:
        require("matplotlib", "minimax demo")
        require("sklearn", "minimax demo")
    except MissingExtraError as error:
        raise UsageError(str(error)) from None
    from ..demo import format_table, run_demo, summary_tables  # needs both

    summary = run_demo(
        args.out,
        quick=args.quick,
        seed=args.seed,
        eps=args.eps,
        progress=getattr(args, "progress", True),
        threads=getattr(args, "threads", 1) or None,
        seeds=getattr(args, "seeds", None),
        parts=getattr(args, "parts", None) or DEFAULT_PARTS,
    )
    for heading, header, rows in summary_tables(summary):
        print(f"\n{heading}")
        print(format_table(header, rows))
    print(
        f"\nreport: {Path(args.out) / 'report.html'}  "
        f"(summary.json, {summary['timings']['total']:.0f} s)"
    )
    return 0
