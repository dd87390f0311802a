"""Data parallelism over torch.distributed (gloo, two ranks on 127.0.0.1) and its no-op default."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch

import minimax
from minimax.distributed import (
    LOCAL,
    Communicator,
    data_parallel,
    rank_seed,
    shard_bounds,
    split_sizes,
)
from minimax.testing.distributed import run_ranks

WORKER = str(Path(__file__).with_name("distributed_worker.py"))


def _ranks(mode: str, world: int = 2, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    return run_ranks([sys.executable, WORKER, mode], world, timeout=timeout)


@pytest.mark.slow
def test_two_rank_step_equals_one_process_step() -> None:
    results = _ranks("step")
    for r in results:
        assert r.returncode == 0, f"rank {r.rank}:\n{r.stdout}\n{r.stderr[-3000:]}"
        assert r.stdout.startswith("OK"), r.stdout


@pytest.mark.slow
def test_dead_rank_makes_the_others_fail_fast() -> None:
    results = _ranks("die", timeout=60.0)
    killed, alive = results[1], results[0]
    assert killed.returncode == -9
    assert alive.returncode == 3, f"{alive.stdout}\n{alive.stderr[-3000:]}"
    assert "COLLECTIVE-ERROR" in alive.stdout and "peer rank" in alive.stdout
    assert alive.seconds < 60


def test_local_communicator_is_a_no_op() -> None:
    g = {"w": torch.randn(3, 4)}
    out = LOCAL.mean(g, 7)
    assert out["w"] is g["w"]
    v = torch.randn(3, 5)
    assert torch.equal(LOCAL.batch_means(v), v.mean(dim=1))
    assert not LOCAL.active and LOCAL.bytes_sent == 0


def test_data_parallel_checks_the_rule_and_the_communicator() -> None:
    model = torch.nn.Linear(2, 2)
    problem = minimax.ModuleProblem(model, perturbation=minimax.LinfBall(0.1))
    engine = data_parallel(problem, LOCAL)
    assert engine.communicator is LOCAL and engine.problem is problem
    assert minimax.extend.engine_of(problem).communicator is LOCAL
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    ranks = data_parallel(problem, Communicator())  # a communicator of its own: data parallel
    with pytest.raises(ValueError, match="no data-parallel form"):
        minimax.MinMaxOptimizer(problem, sgd, minimax.PGD(1, 0.1), minimax.GroupDRO(), engine=ranks)
    opt = minimax.MinMaxOptimizer(problem, sgd, minimax.PGD(1, 0.1), minimax.GroupDRO())
    with pytest.raises(ValueError, match="no data-parallel form"):
        opt.engine = ranks
    with pytest.raises(TypeError, match="Communicator"):
        data_parallel(problem, object())  # type: ignore[arg-type]
    assert isinstance(LOCAL, Communicator)


def test_rank_seeds_differ_and_rank_zero_keeps_the_seed() -> None:
    assert rank_seed(5, 0) == 5
    seeds = {rank_seed(s, r) for s in range(4) for r in range(1, 9)}
    assert len(seeds) == 32 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ValueError, match="rank"):
        rank_seed(0, -1)


@pytest.mark.parametrize("n,world", [(10, 2), (7, 3), (2, 4)])
def test_shards_cover_the_items_once(n: int, world: int) -> None:
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert max(split_sizes(n, world)) - min(split_sizes(n, world)) <= 1
