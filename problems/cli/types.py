"""What the commands of the ``minimax`` CLI share: argument types, the usage error, the help
formatter and the device choice.

Public API::

    UsageError                     a bad argument found after parsing (exit status 2)
    number / nonnegative_number / positive_number    floats, fractions such as 8/255 accepted
    positive_int / nonnegative_int
    formatter(prog)                the help formatter of every command
    resolve_device(name) -> str    "auto" → cuda when available, else cpu
    load_data(name, data_dir, *, download, progress, seed) -> ImageData   (errors: UsageError)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from problems.data.datasets import ImageData, load_dataset
from problems.data.errors import DatasetError

__all__ = [
    "PROG",
    "UsageError",
    "formatter",
    "load_data",
    "nonnegative_int",
    "nonnegative_number",
    "number",
    "positive_int",
    "positive_number",
    "resolve_device",
]

PROG = "minimax"


class UsageError(Exception):
    """A bad argument found after parsing (exit status 2)."""


def number(text: str) -> float:
    """A float, or a fraction such as ``8/255``."""
    try:
        value = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (use e.g. 0.031 or 8/255)"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def nonnegative_number(text: str) -> float:
    """A `number` ≥ 0."""
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 0")
    return value


def positive_number(text: str) -> float:
    """A `number` > 0."""
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be ≥ {low}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


def formatter(prog: str) -> argparse.HelpFormatter:
    """Help text kept as written (the epilogs hold examples), options aligned."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def resolve_device(name: str) -> str:
    """``--device``: cpu, cuda, cuda:N, or auto (cuda when available); else a UsageError."""
    import torch  # only commands that compute need torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"--device must be cpu, cuda, cuda:N or auto, got {name!r}")
    return name


def load_data(name: str, data_dir: Path, *, download: bool, progress: bool,
              seed: int) -> ImageData:  # fmt: skip
    """The data set ``name`` from the `DATASETS` registry; its errors become usage errors."""
    try:
        return load_dataset(name, data_dir, download=download, progress=progress, seed=seed)
    except DatasetError as error:
        raise UsageError(str(error)) from None
