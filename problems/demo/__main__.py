"""``python -m problems.demo [options]``: the same as ``minimax demo [options]``."""

import sys

from problems.cli import main

raise SystemExit(main(["demo", *sys.argv[1:]]))
