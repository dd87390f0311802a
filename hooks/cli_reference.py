"""mkdocs hook: replaces ``<!-- minimax-cli-reference -->`` in a page with the ``--help`` of the
``minimax`` command and of each of its subcommands, generated from the argparse parser (so the
reference cannot drift from the CLI)."""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- minimax-cli-reference -->"


def _parser() -> argparse.ArgumentParser:
    from minimax_problems import cli

    try:
        return cli.build_parser(demo=True)
    except TypeError:  # a build_parser without the demo switch
        return cli.build_parser()


def cli_reference() -> str:
    """Markdown: one section per command, its help text in a code block."""
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: make it fixed
    parser = _parser()
    parts = ["## `minimax`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"## `minimax {name}`", "", "```text", sub.format_help().rstrip()]
                parts += ["```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
