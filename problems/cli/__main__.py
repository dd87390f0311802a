"""``python -m minimax_problems.cli`` (and ``torchrun -m minimax_problems.cli``): the ``minimax``
command."""

import sys

from . import main

sys.exit(main())
