"""``python -m minimax_problems.demo [options]``: the same as ``minimax demo [options]``."""

import sys

from ..cli import main

raise SystemExit(main(["demo", *sys.argv[1:]]))
