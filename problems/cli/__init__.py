"""The ``minimax`` command line: ``train``, ``evaluate``, ``compare`` and ``demo``.

``main(argv=None) -> int`` is the console-script entry point. Exit status: 0 done, 2 a user error
(a bad argument or input file: one line on stderr, no traceback), 1 an unexpected error (one
line too), 3 a training run that diverged (its last good checkpoint kept), 130 interrupted.
``--debug`` (before or after the command) shows the traceback instead. Each command is a
module of this package with ``HELP``, ``DESCRIPTION``, ``EPILOG``, ``add_arguments(parser)``,
``run(args) -> int`` and optionally ``finish_args(args, given)`` (presets and cross-option
checks; ``given``: the explicit options);
`problems.cli.types` holds the shared argument types. To add a command, write such a module and
list it with its one-line help in `SUMMARIES` (`COMMANDS` follows).

Startup is lazy: ``minimax --help`` (and ``--version``, a mistyped command) imports no torch; a
command's module, and torch with it, is imported when that command is parsed or run
(``COMMANDS[name]`` imports it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from .types import PROG, Parser, UsageError, formatter, number

__all__ = ["COMMANDS", "SUMMARIES", "USER_ERRORS", "build_parser", "explicit", "main", "number"]

#: command name → its one-line help (the module's ``HELP``; a test checks they agree), so that
#: ``minimax --help`` lists the commands without importing them
SUMMARIES: dict[str, str] = {
    "train": "adversarially train an image classifier (CIFAR-10, its synthetic stand-in, digits)",
    "evaluate": "robust accuracy of a model (checkpoint, state_dict or TorchScript) on a test set",
    "compare": "plot and tabulate several runs",
    "demo": "the offline demo: the paper's claims, compared over several seeds",
}


class _Commands(Mapping[str, ModuleType]):
    """command name → its module (``problems.cli.<name>``), imported on first access."""

    def __getitem__(self, name: str) -> ModuleType:
        if name not in SUMMARIES:
            raise KeyError(name)
        return importlib.import_module(f".{name}", __package__)

    def __iter__(self) -> Iterator[str]:
        return iter(SUMMARIES)

    def __len__(self) -> int:
        return len(SUMMARIES)


#: command name → its module (imported when looked up)
COMMANDS: Mapping[str, ModuleType] = _Commands()


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: exit status 2. OSError covers the environment and the
    user's files (a full disk, a name too long, permissions, a missing or existing path)."""
    from ..data.errors import DatasetError
    from ..training.checkpoint import NonFiniteStateError

    return (UsageError, DatasetError, NonFiniteStateError, OSError)


#: errors that are the user's to fix (bad input files, existing directories, a full disk): exit
#: status 2 (a tuple; importing it loads the data and checkpoint errors)
USER_ERRORS: tuple[type[BaseException], ...]


def __getattr__(name: str) -> Any:  # USER_ERRORS without importing torch at startup
    if name == "USER_ERRORS":
        return _user_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Version(argparse.Action):
    """``--version``: the installed distribution's version (no torch import); from a source
    tree without one, ``minimax.__version__``."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib import metadata

        try:
            version = metadata.version("minimax")
        except metadata.PackageNotFoundError:
            from minimax import __version__ as version
        parser.exit(0, f"minimax {version}\n")


def build_parser(*, defaults: bool = True, only: str | None = None) -> argparse.ArgumentParser:
    """The full parser: one subcommand per `COMMANDS` entry. ``defaults=False`` leaves every
    option's default out (the namespace then holds only what was given: see `explicit`).
    ``only``: declare that command's options alone (the others are listed, not imported);
    ``only=""`` declares none (the top-level ``--help``, no torch imported)."""
    parser = Parser(
        prog=PROG,
        formatter_class=formatter,
        description="minimax: min-max solvers and Danskin's Descent Direction (DDi) for "
        "adversarial training.",
        epilog="Run `minimax COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, summary in SUMMARIES.items():
        if only is not None and name != only:
            sub.add_parser(name, help=summary, add_help=False)
            continue
        command = COMMANDS[name]
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
    probe = build_parser(defaults=False, only=_command_of(argv))
    return set(vars(probe.parse_known_args(list(argv))[0]))


def _command_of(argv: Sequence[str]) -> str:
    """The command named in ``argv`` ("" when none is: only top-level options, or a typo)."""
    for token in argv:
        if not token.startswith("-"):
            return token if token in SUMMARIES else ""
    return ""


def _parse(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse ``argv`` with the parser of its command alone; an unknown option is reported by the
    command's parser (``minimax train: error: ...``), not the top-level one."""
    parser = build_parser(only=_command_of(argv))
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparser(parser, args.command) if args.command else parser
        sub.error(f"unrecognized arguments: {' '.join(extras)}")
    return parser, args


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run the command; returns the exit status."""
    program = argv is None  # the ``minimax`` process itself (not a call from Python code)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _main(argv)
    except KeyboardInterrupt:  # while importing, parsing or reporting: no traceback
        print(f"{PROG}: interrupted", file=sys.stderr)
        status = 130
    if program and status == 130:  # a further Ctrl-C cannot interrupt the exit
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Interpreter shutdown restores SIGINT's default action, and finalising a half-imported
        # torch can take long enough for a second Ctrl-C to kill the process there: leave now
        # (every file the command writes is written atomically, so nothing is left half-done).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return status


def _main(argv: list[str]) -> int:
    try:
        parser, args = _parse(argv)
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
        user = isinstance(error, _user_errors())
        kind = "error" if user else f"unexpected error ({type(error).__name__})"
        hint = "" if user else "; rerun with --debug for the traceback"
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prefix}: {kind}: {message}{hint}", file=sys.stderr)
        return 2 if user else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
