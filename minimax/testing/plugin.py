"""pytest plugin of `minimax.testing`: enable it with one line in your root ``conftest.py``::

    pytest_plugins = ["minimax.testing.plugin"]

Fixtures:

- ``minimax_seed``: seeds torch's global RNG for the test (from the test's id and the
  ``--minimax-seed`` option, so every test has its own reproducible seed) and restores the
  previous RNG state afterwards; the value is the seed.
- ``minimax_generator``: a ``torch.Generator`` seeded with ``minimax_seed``.
- ``known_problem``: a factory ``known_problem(name, **arguments)`` of `KnownProblem`s by family
  name (``"counterexample"``, ``"bilinear"``, ``"max_of_pieces"``, ``"multilinear_box"``,
  ``"linear_model"``, ``"tanh_network"``), see `minimax.testing.make_problem`.
- ``assert_descent``, ``assert_stationary``, ``assert_rule_descends``: the assertion functions.

Command-line option: ``--minimax-seed N`` (default 0) changes every test's seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from minimax.testing.assertions import (
    assert_descent_direction,
    assert_rule_descends,
)
from minimax.testing.assertions import (
    assert_stationary as _assert_stationary,
)
from minimax.testing.problems import KnownProblem, make_problem

__all__ = [
    "assert_descent",
    "assert_rule_descends_fixture",
    "assert_stationary",
    "known_problem",
    "minimax_generator",
    "minimax_seed",
    "pytest_addoption",
    "pytest_report_header",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minimax", "minimax.testing")
    group.addoption(
        "--minimax-seed",
        type=int,
        default=0,
        help="base seed of the minimax_seed fixture (each test's seed mixes it with the test id)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"minimax.testing: --minimax-seed={config.getoption('--minimax-seed')}"


def _seed_for(base: int, nodeid: str) -> int:
    digest = hashlib.sha256(f"{base}:{nodeid}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@pytest.fixture
def minimax_seed(request: pytest.FixtureRequest) -> Iterator[int]:
    """Seed torch for this test (reproducibly, from the test id); restore the RNG afterwards."""
    seed = _seed_for(int(request.config.getoption("--minimax-seed")), request.node.nodeid)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield seed
    finally:
        torch.random.set_rng_state(state)


@pytest.fixture
def minimax_generator(minimax_seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with this test's ``minimax_seed``."""
    return torch.Generator().manual_seed(minimax_seed)


@pytest.fixture
def known_problem() -> Callable[..., KnownProblem]:
    """Factory: ``known_problem("max_of_pieces", theta=[0.5])`` → a `KnownProblem`."""
    return make_problem


@pytest.fixture
def assert_descent() -> Callable[..., Any]:
    """`minimax.testing.assert_descent_direction`."""
    return assert_descent_direction


@pytest.fixture
def assert_stationary() -> Callable[..., Any]:
    """`minimax.testing.assert_stationary`."""
    return _assert_stationary


@pytest.fixture(name="assert_rule_descends")
def assert_rule_descends_fixture() -> Callable[..., Any]:
    """`minimax.testing.assert_rule_descends`."""
    return assert_rule_descends
