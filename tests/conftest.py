"""Shared test configuration: a bounded, deadline-free hypothesis profile, one torch thread, and
the fast lane (``./run test --fast`` deselects tests marked ``slow``)."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "minimax",
    deadline=None,
    max_examples=int(os.environ.get("MINIMAX_MAX_EXAMPLES", "40")),
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("minimax")
torch.set_num_threads(1)
# the CLI's --threads default keeps torch's count when OMP_NUM_THREADS is set (also in the
# subprocesses the tests start): one thread each, as above
os.environ.setdefault("OMP_NUM_THREADS", "1")


# End-to-end modules (whole CLI runs, the demo, torchrun, the docs site, wheels, ruff/mypy) and the
# iterative QP solver's long property runs: the full suite runs them, the fast lane leaves them out.
SLOW_MODULES = {
    "tests/problems/test_demo.py",
    "tests/problems/test_distributed_training.py",
    "tests/problems/test_evaluation.py",
    "tests/problems/test_figures.py",
    "tests/problems/test_report.py",
    "tests/test_docs.py",
    "tests/test_examples.py",
    "tests/test_packaging.py",
    "tests/test_repo.py",
    "tests/test_run_script.py",
}
SLOW_PARAMS = ("[apg]",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        module = item.path.relative_to(root).as_posix()
        if module in SLOW_MODULES or item.nodeid.endswith(SLOW_PARAMS):
            item.add_marker(pytest.mark.slow)
