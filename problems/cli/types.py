"""What the commands of the ``minimax`` CLI share: argument types, the usage error, the help
formatter and the device choice.

Public API::

    UsageError                     a bad argument found after parsing (exit status 2)
    Parser                         argparse.ArgumentParser whose errors are one line (status 2)
    number / nonnegative_number / positive_number    floats, fractions such as 8/255 accepted
    unit_interval                  a number in [0, 1) (momentum, weight decay)
    radius                         a number in [0, MAX_RADIUS] (eps, step size)
    positive_int / nonnegative_int
    restarts / attack_steps / timeout   bounded: [1, MAX_RESTARTS], [0, MAX_STEPS], (0, a week]
    bounded_int(low, high, why)    an integer in [low, high] (restarts, steps: a typo of 10⁶ is
                                   refused at parse time, not as a 196 GB allocation)
    random_seed                    an integer in [0, 2⁶³ − 1] (what every generator accepts)
    path                           a non-empty path (``--out ''``, an unset $RUN, is refused)
    check_radius(name, value, threat, allow_large)   an L∞ radius over 1 needs allow_large
    formatter(prog)                the help formatter of every command (shows the defaults)
    resolve_device(name) -> str    "auto" → cuda when available, else cpu
    load_data(name, data_dir, *, download, progress, seed) -> ImageData   (errors: UsageError)
    rank_options(args) -> dict     the options every torchrun rank must share (`Ranks.agree`)
    model_spec(args, data) -> dict build_model's arguments from --model, --activation,
                                   --normalization and the data set's shape
    add_threads_argument(parser)   ``--threads`` (train, evaluate); set_threads(n) applies it
    default_threads() -> int       min(4, idle cores / local ranks), at least 1
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # the CLI's --help imports no torch: data loading is imported when used
    from ..data.datasets import ImageData


def _checks() -> Any:
    """`minimax.checks`, imported when an argument is converted (``--help`` imports no torch)."""
    from minimax import checks

    return checks


__all__ = [
    "MAX_RADIUS",
    "MAX_RESTARTS",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_TIMEOUT",
    "PROG",
    "Parser",
    "UsageError",
    "add_threads_argument",
    "attack_steps",
    "bounded_int",
    "check_radius",
    "default_threads",
    "formatter",
    "load_data",
    "model_spec",
    "nonnegative_int",
    "nonnegative_number",
    "number",
    "path",
    "positive_int",
    "positive_number",
    "radius",
    "random_seed",
    "rank_options",
    "resolve_device",
    "restarts",
    "set_threads",
    "timeout",
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
        return _checks().real_number(repr(text), value, **bounds)
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
        _checks().radius(
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
            return _checks().integer(repr(text), value, minimum=low)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = f"integer ≥ {low}"
    return parse


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


def bounded_int(low: int, high: int, why: str = "") -> Callable[[str], int]:
    """An argument type: an integer in [low, high]; ``why`` says where the upper bound comes
    from (shown in the message)."""

    def parse(text: str) -> int:
        value = int(text)  # a ValueError: argparse says "invalid integer in [low, high] value"
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be an integer ≥ {low}")
        if value > high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is too large: at most {high:,}" + (f" ({why})" if why else "")
            )
        return value

    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


#: the largest ``--restarts``: the paper's m is 10, and each restart holds a batch of activations
MAX_RESTARTS = 1000
#: the largest attack ``--steps``: AutoAttack's APGD takes 100
MAX_STEPS = 10_000
#: the largest ``--dist-timeout`` (seconds): a week
MAX_TIMEOUT = 7 * 24 * 3600.0

#: the largest seed: torch.manual_seed, numpy and the per-rank streams all accept [0, 2⁶³ − 1]
MAX_SEED = 2**63 - 1
random_seed = bounded_int(0, MAX_SEED, "2**63 - 1, what every random generator accepts")
restarts = bounded_int(
    1, MAX_RESTARTS, "each restart holds a batch of activations; the paper's m is 10"
)
attack_steps = bounded_int(0, MAX_STEPS, "AutoAttack's APGD takes 100")


def timeout(text: str) -> float:
    """Seconds in (0, `MAX_TIMEOUT`]."""
    value = positive_number(text)
    if value > MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text!r} is too long: at most {MAX_TIMEOUT:g} (a week)")
    return value


def path(text: str) -> Path:
    """A path that is not empty: ``--out ''`` (e.g. an unset ``$RUN``) would mean the current
    directory, where a run would scatter its files."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "is empty (an unset shell variable?): give a directory or file name, e.g. runs/ddi "
            "(write '.' for the current directory)"
        )
    return Path(text)


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
    from ..data.datasets import load_dataset
    from ..data.errors import DatasetError

    try:
        return load_dataset(name, data_dir, download=download, progress=progress, seed=seed)
    except DatasetError as error:
        raise UsageError(str(error)) from None


#: options that may differ between ranks: where each machine keeps the data, who downloads,
#: who shows progress, tracebacks; and the parser's own entries
PER_RANK_OPTIONS = frozenset(
    {"data_dir", "download", "no_progress", "progress", "debug", "func", "command_module"}
)


def rank_options(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options of a command that every rank under torchrun must share (all but
    `PER_RANK_OPTIONS`), as plain values (paths as strings)."""
    plain = (bool, int, float, str, type(None))
    return {
        k: v if isinstance(v, plain) else str(v)
        for k, v in sorted(vars(args).items())
        if k not in PER_RANK_OPTIONS
    }


#: the most threads the automatic choice takes: the models trained on CPUs here (small CNNs,
#: CIFAR-10 smoke runs) gain little beyond 4, and more threads spin on cores others need
MAX_AUTO_THREADS = 4


def default_threads() -> int:
    """``--threads`` when not given: min(`MAX_AUTO_THREADS`, idle cores / this machine's
    torchrun ranks), at least 1. Idle cores: the usable cores minus the 1-minute load average.
    torch's own default (a thread per core, whatever else runs) took 10 s per step on a loaded
    2-core machine where one thread took 0.16 s."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    idle = round(cores - load)
    return max(1, min(MAX_AUTO_THREADS, idle // ranks))


def add_threads_argument(parser: Any) -> None:
    """``--threads N``: torch's CPU threads (intra-op)."""
    parser.add_argument(
        "--threads",
        type=bounded_int(0, 1024, "one per core at most"),
        default=None,
        metavar="N",
        help="torch CPU threads (default: auto = min(4, idle cores / local torchrun ranks), "
        "at least 1; OMP_NUM_THREADS, when set, is kept; 0: torch's default, one per core)",
    )


def set_threads(threads: int | None) -> int:
    """Apply ``--threads`` (None: `default_threads`, unless OMP_NUM_THREADS is set; 0: torch's
    default); returns the number torch uses."""
    import torch

    if threads is None and not os.environ.get("OMP_NUM_THREADS"):
        threads = default_threads()
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def model_spec(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    """`build_model`'s arguments from ``--model``, ``--activation``, ``--normalization`` and
    ``data``'s classes, channels and image size (what a checkpoint's meta.model holds)."""
    return {
        "name": args.model,
        "activation": args.activation,
        "normalization": args.normalization,
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "image_size": data.image_size,
    }
