"""The ``minimax`` command line: ``train``, ``evaluate``, ``compare`` and ``demo``.

``main(argv=None) -> int`` is the console-script entry point; bad arguments exit with status 2
and a one-line message (no traceback). Each command is a module of this package with
``HELP``, ``DESCRIPTION``, ``EPILOG``, ``add_arguments(parser)`` and ``run(args) -> int``;
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
from problems.cli.types import PROG, UsageError, formatter, number

__all__ = ["COMMANDS", "build_parser", "main", "number"]

#: command name → its module
COMMANDS: dict[str, ModuleType] = {
    "train": train, "evaluate": evaluate, "compare": compare, "demo": demo,
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full parser: one subcommand per `COMMANDS` entry."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=formatter,
        description="minimax: min-max solvers and Danskin's Descent Direction (DDi) for "
                    "adversarial training.",
        epilog="Run `minimax COMMAND --help` for a command's options and examples.",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"minimax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name, help=command.HELP, description=command.DESCRIPTION, epilog=command.EPILOG,
            formatter_class=formatter,
        )  # fmt: skip
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run the command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit:  # --help, --version, argparse errors (status 2)
        return int(exit.code or 0) if not isinstance(exit.code, str) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
