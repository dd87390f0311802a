"""Example budgets of the property tests of minimax.testing (a helper module, imported by them).

- `FAST`: 12 examples each (the environment variable MINIMAX_TESTING_EXAMPLES raises it);
- `SEARCH`: 300 derandomized examples, for the tests that hunt for a counterexample."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FAST = settings(
    max_examples=int(os.environ.get("MINIMAX_TESTING_EXAMPLES", "12")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SEARCH = settings(max_examples=300, database=None, derandomize=True, print_blob=False)
