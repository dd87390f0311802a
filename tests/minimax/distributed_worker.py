"""One rank of the data-parallel tests (started by test_distributed.py through run_ranks).

``step``: for Danskin, MaxLoss and DDi, a data-parallel step on this rank's half of the batch
must equal a one-process step on the full batch (computed here too): parameters, ‖d‖, the
certificate, the weights and the robust loss. Prints "OK" or raises.
``die``: rank 1 SIGKILLs itself before the first collective; the others must fail with a
`CollectiveError` (they print "COLLECTIVE-ERROR" and exit 3) instead of hanging.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch import nn

import minimax
from minimax.distributed import (
    CollectiveError,
    ProcessGroupCommunicator,
    data_parallel,
    init_from_env,
    shard_bounds,
)
from minimax.inner.base import Candidates, InnerSolver


class Fixed(InnerSolver):
    """Returns given candidates (the full batch's, cut to this rank's shard)."""

    def __init__(self, candidates: Candidates) -> None:
        super().__init__(restarts=candidates.m)
        self.candidates = candidates

    def search(self, engine, params, batch, generator):  # type: ignore[no-untyped-def]
        return self.candidates


class Rescore(Fixed):
    """The given candidates' perturbations, scored at the current θ (a line search's trials
    then see R move)."""

    def search(self, engine, params, batch, generator):  # type: ignore[no-untyped-def]
        deltas = self.candidates.deltas
        return Candidates(deltas, engine.values(params, deltas, batch).detach())


def _setup(seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.rand(11, 6, dtype=torch.float64)  # 11: unequal shards (6 and 5)
    y = torch.randint(0, 3, (11,))
    return model, (x, y)


def _step(rule, shard: slice | None, comm, step_size=None):  # type: ignore[no-untyped-def]
    model, (x, y) = _setup()
    problem = minimax.ModuleProblem(model, perturbation=minimax.LinfBall(0.3))
    full = minimax.PGD(3, 0.1, restarts=4, seed=1)(problem, problem.parameters(), (x, y))
    engine = None
    if shard is not None:
        full = Candidates(full.deltas[:, shard], full.values[:, shard])
        x, y = x[shard], y[shard]
        engine = data_parallel(problem, comm)
    sgd = torch.optim.SGD(model.parameters(), lr=0.5 if step_size is None else 50.0)
    inner = Fixed(full) if step_size is None else Rescore(full)
    opt = minimax.MinMaxOptimizer(problem, sgd, inner, rule, engine=engine, step_size=step_size)
    report = opt.step((x, y))
    return report, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _close(a, b, what: str) -> None:  # type: ignore[no-untyped-def]
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if not torch.allclose(a, b, rtol=1e-9, atol=1e-11):
        raise AssertionError(f"{what}: data-parallel {a} vs one process {b}")


def step() -> None:
    comm = init_from_env(timeout=30)
    start, stop = shard_bounds(11, comm.rank, comm.world_size)
    rules = {
        "ddi": lambda: minimax.DDi(),
        "ddi-tol": lambda: minimax.DDi(tolerance=0.05),
        "danskin": lambda: minimax.Danskin(certify=True),
        "maxloss": lambda: minimax.MaxLoss(certify=True),
    }
    for name, make in rules.items():
        ref, ref_params = _step(make(), None, comm)
        got, got_params = _step(make(), slice(start, stop), comm)
        for k in ref_params:
            _close(got_params[k], ref_params[k], f"{name} parameter {k}")
        _close(got.norm, ref.norm, f"{name} norm")
        _close(got.certificate, ref.certificate, f"{name} certificate")
        _close(got.robust_loss, ref.robust_loss, f"{name} robust loss")
        if name != "maxloss":  # MaxLoss's weights are per example: [B_r, m] vs [B, m]
            _close(got.weights, ref.weights, f"{name} weights")
        else:
            _close(got.weights, ref.weights[start:stop], f"{name} weights")
    # the certified step: R is the global mean, so every rank takes the same t
    ref, ref_params = _step(minimax.DDi(), None, comm, "armijo")
    got, got_params = _step(minimax.DDi(), slice(start, stop), comm, "armijo")
    assert got.trials == ref.trials > 1 and got.t == ref.t > 0, (got, ref)
    for k in ref_params:
        _close(got_params[k], ref_params[k], f"armijo parameter {k}")
    _close(got.robust_loss_after, ref.robust_loss_after, "armijo robust loss after")
    try:
        _step(minimax.DDi(per_example=True), slice(start, stop), comm)
    except ValueError as error:
        assert "not data-parallel" in str(error), error
    else:
        raise AssertionError("per-example DDi ran under data parallelism")
    _batchnorm_sync(start, stop)
    print("OK", comm.bytes_sent, comm.collectives)


def _batchnorm_sync(start: int, stop: int) -> None:
    """With batchnorm="sync" the running statistics end equal on every rank; "local" keeps
    each rank's own (they differ: the shards differ)."""
    for mode in ("sync", "local"):
        comm = ProcessGroupCommunicator(batchnorm=mode)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).double()
        x, y = torch.rand(11, 6, dtype=torch.float64), torch.randint(0, 3, (11,))
        problem = minimax.ModuleProblem(model, perturbation=minimax.LinfBall(0.3))
        engine = data_parallel(problem, comm)
        sgd = torch.optim.SGD(model.parameters(), lr=0.1)
        inner = minimax.PGD(2, 0.1, restarts=2)
        opt = minimax.MinMaxOptimizer(problem, sgd, inner, minimax.DDi(), engine=engine)
        opt.step((x[start:stop], y[start:stop]))
        mean = model[1].running_mean.clone()
        spread = comm.mean({"d": (mean - comm.mean({"m": mean}, 1)["m"]).abs()}, 1)["d"]
        same = bool(spread.max() < 1e-12)
        assert same == (mode == "sync"), (mode, spread)


def die() -> None:
    comm = init_from_env(timeout=20)
    if comm.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        for _ in range(1000):
            comm.mean({"g": torch.ones(1000)}, 1)
    except CollectiveError as error:
        print("COLLECTIVE-ERROR", error, flush=True)
        # the process group has lost a peer: gloo's threads may abort (SIGABRT) in their
        # destructors at interpreter shutdown, so leave without running them
        os._exit(3)
    print("NO ERROR")


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"step": step, "die": die}[sys.argv[1]]()
