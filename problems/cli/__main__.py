"""``python -m problems.cli`` (and ``torchrun -m problems.cli``): the ``minimax`` command."""

import sys

from problems.cli import main

sys.exit(main())
