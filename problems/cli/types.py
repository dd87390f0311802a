"""What the commands of the ``minimax`` CLI share: argument types, the usage error, the help
formatter and the device choice.

Public API::

    UsageError                     a bad argument found after parsing (exit status 2)
    Parser                         argparse.ArgumentParser whose errors are one line (status 2)
    number / nonnegative_number / positive_number    floats, fractions such as 8/255 accepted
    unit_interval                  a number in [0, 1) (momentum, weight decay)
    radius                         a number in [0, MAX_RADIUS] (eps, step size)
    positive_int / nonnegative_int
    check_radius(name, value, threat, allow_large)   an L∞ radius over 1 needs allow_large
    formatter(prog)                the help formatter of every command (shows the defaults)
    resolve_device(name) -> str    "auto" → cuda when available, else cpu
    load_data(name, data_dir, *, download, progress, seed) -> ImageData   (errors: UsageError)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

from minimax import checks
from problems.data.datasets import ImageData, load_dataset
from problems.data.errors import DatasetError

__all__ = [
    "MAX_RADIUS",
    "PROG",
    "Parser",
    "UsageError",
    "check_radius",
    "formatter",
    "load_data",
    "nonnegative_int",
    "nonnegative_number",
    "number",
    "positive_int",
    "positive_number",
    "radius",
    "resolve_device",
    "unit_interval",
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


def _in_range(text: str, value: float, **bounds: Any) -> float:
    """``value`` checked by `minimax.checks.real_number` (``bounds``); its error as argparse's."""
    try:
        return checks.real_number(repr(text), value, **bounds)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def nonnegative_number(text: str) -> float:
    """A `number` ≥ 0."""
    return _in_range(text, number(text), nonnegative=True)


def positive_number(text: str) -> float:
    """A `number` > 0."""
    return _in_range(text, number(text), positive=True)


def unit_interval(text: str) -> float:
    """A `number` in [0, 1) (e.g. momentum: 1 or more never forgets, so the steps grow)."""
    return _in_range(text, number(text), nonnegative=True, below=1)


#: the largest radius or step accepted: above the L1 diameter of any image set used here
#: (CIFAR-10's is 3 072)
MAX_RADIUS = 1e4


def radius(text: str) -> float:
    """A `number` in [0, `MAX_RADIUS`]."""
    value = nonnegative_number(text)
    if value > MAX_RADIUS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is larger than any image's diameter (at most {MAX_RADIUS:g}); images "
            "are in [0, 1]: did you mean 8/255?"
        )
    return value


def check_radius(name: str, value: float, threat: str, allow_large: bool) -> None:
    """An L∞ ``value`` over 1 covers the whole of [0, 1]: a UsageError unless ``allow_large``
    (`minimax.checks.radius`)."""
    try:
        checks.radius(
            name,
            value,
            norm=threat,
            allow_large=allow_large,
            hint="pass --allow-large-eps if you mean it",
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        try:
            return checks.integer(repr(text), value, minimum=low)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = f"integer ≥ {low}"
    return parse


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs kept as written (they hold examples); every option's help ends
    with its default, unless the default is None / False or the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help or ""
        default = action.default
        if (
            "%(default)" in help
            or "default" in help
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or not action.option_strings
            or action.nargs == 0  # flags: their default is "not given"
        ):
            return help
        return f"{help} (default: %(default)s)".lstrip()


def formatter(prog: str) -> argparse.HelpFormatter:
    """The help formatter of every command: raw descriptions, defaults shown, options aligned."""
    return _Formatter(prog, max_help_position=32)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2 (no usage
    block: ``--help`` shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def load_data(name: str, data_dir: Path, *, download: bool, progress: bool, seed: int) -> ImageData:
    """The data set ``name`` from the `DATASETS` registry; its errors become usage errors."""
    try:
        return load_dataset(name, data_dir, download=download, progress=progress, seed=seed)
    except DatasetError as error:
        raise UsageError(str(error)) from None
