"""The ``minimax`` command line: ``train``, ``evaluate``, ``compare`` and ``demo``.

``main(argv=None) -> int`` is the console-script entry point. Exit status: 0 done, 2 a user error
(a bad argument or input file: one line on stderr, no traceback), 1 an unexpected error (one
line too), 3 a training run that diverged (its last good checkpoint kept), 130 interrupted.
``--debug`` (before or after the command) shows the traceback instead. Each command is a
module of this package with ``HELP``, ``DESCRIPTION``, ``EPILOG``, ``add_arguments(parser)``,
``run(args) -> int`` and optionally ``finish_args(args, given)`` (presets and cross-option
checks; ``given``: the explicit options);
`problems.cli.types` holds the shared argument types. To add a command, write such a module and
list it in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from minimax import __version__
from problems.cli import compare, demo, evaluate, train
from problems.cli.types import PROG, Parser, UsageError, formatter, number
from problems.data.errors import DatasetError
from problems.training.checkpoint import NonFiniteStateError

__all__ = ["COMMANDS", "USER_ERRORS", "build_parser", "explicit", "main", "number"]

#: command name → its module
COMMANDS: dict[str, ModuleType] = {
    "train": train,
    "evaluate": evaluate,
    "compare": compare,
    "demo": demo,
}


#: errors that are the user's to fix (bad input files, existing directories): exit status 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    DatasetError,
    NonFiniteStateError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def build_parser(*, defaults: bool = True) -> argparse.ArgumentParser:
    """The full parser: one subcommand per `COMMANDS` entry. ``defaults=False`` leaves every
    option's default out (the namespace then holds only what was given: see `explicit`)."""
    parser = Parser(
        prog=PROG,
        formatter_class=formatter,
        description="minimax: min-max solvers and Danskin's Descent Direction (DDi) for "
        "adversarial training.",
        epilog="Run `minimax COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"minimax {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=command.HELP,
            description=command.DESCRIPTION,
            epilog=command.EPILOG,
            formatter_class=formatter,
        )
        command.add_arguments(p)
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks of errors",
        )
        for action in p._actions:
            if not defaults:
                action.default = argparse.SUPPRESS
            elif action.help is None and action.option_strings and action.nargs != 0:
                action.help = "(default: %(default)s)"  # an option without help still shows it
        p.set_defaults(func=command.run, command_module=command)
    return parser


def explicit(argv: Sequence[str]) -> set[str]:
    """The destinations of the options given on the command line ``argv`` (not defaulted)."""
    probe = build_parser(defaults=False)
    return set(vars(probe.parse_args(list(argv))))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run the command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, argparse errors (status 2)
        return int(exit.code or 0) if not isinstance(exit.code, str) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    prefix = f"{PROG} {args.command}"
    try:
        finish = getattr(args.command_module, "finish_args", None)
        if finish is not None:  # presets (train --paper) yield to explicit options
            finish(args, explicit(argv))
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        user = isinstance(error, USER_ERRORS)
        kind = "error" if user else f"unexpected error ({type(error).__name__})"
        hint = "" if user else "; rerun with --debug for the traceback"
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prefix}: {kind}: {message}{hint}", file=sys.stderr)
        return 2 if user else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
