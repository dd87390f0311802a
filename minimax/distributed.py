"""Data parallelism over `torch.distributed`: every rank attacks its own shard of the batch.

A `Communicator` is owned by the execution engine (`minimax.engine.Engine`), which calls it
between the per-rank gradients and everything computed from them:

    rank r: candidates on its shard (B_r examples) → gradients g_r (means over the shard)
            → ONE all-reduce of [Σ_r B_r·g_r ‖ Σ_r B_r] → global means ḡ = Σ B_r g_r / Σ B_r
            → Gram K, QP weights, d, ‖d‖, certificate: the same on every rank

The default `LOCAL` communicator does nothing (single process: numbers bitwise unchanged).
`ProcessGroupCommunicator` reduces over a process group; build one with `init_from_env` under
``torchrun`` and give it to an engine with `data_parallel` (``MinMaxOptimizer(...,
engine=data_parallel(problem, communicator))``). Every collective packs its tensors into one flat
buffer: DDi sends m·P + 1 numbers per step, Danskin and MaxLoss P + 1 (plus m + 1 float64 batch-mean
values for Danskin's choice of restart and DDi's ``tolerance``).

Public API::

    Communicator                 the no-op base (LOCAL is its instance)
    ProcessGroupCommunicator(group=None, batchnorm="local")
    CollectiveError              a collective failed (a peer died, or the timeout passed)
    data_parallel(problem, communicator) -> Engine   an engine that reduces over ranks
    init_from_env(timeout=60.0, backend=None) -> Communicator   (torchrun's environment)
    rank_seed(seed, rank) -> int   the seed of rank r's random stream (rank 0 keeps ``seed``)
"""

from __future__ import annotations

import copy
import datetime
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from minimax import checks

if TYPE_CHECKING:
    from minimax.engine import Engine
    from minimax.problem import Problem

__all__ = [
    "LOCAL",
    "CollectiveError",
    "Communicator",
    "ProcessGroupCommunicator",
    "data_parallel",
    "init_from_env",
    "rank_seed",
    "shard_bounds",
    "split_sizes",
]

BatchNormMode = Literal["local", "sync"]
_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


class CollectiveError(RuntimeError):
    """A collective failed: a peer rank died or did not answer within the timeout."""


class Communicator:
    """No communication: one process holds the whole batch (the default of every engine).

    `mean` and `batch_means` return their input's own statistics; `synchronize_statistics` does
    nothing. Subclasses reduce over ranks. ``bytes_sent``, ``collectives`` and ``seconds`` count
    the payload, the number of collectives and the time spent in them (benchmarks/distributed.py).
    """

    rank: int = 0
    world_size: int = 1
    batchnorm: BatchNormMode = "local"

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.collectives = 0
        self.seconds = 0.0

    @property
    def active(self) -> bool:
        """True when there is more than one rank to talk to."""
        return self.world_size > 1

    def mean(self, tensors: Mapping[str, Tensor], count: int) -> dict[str, Tensor]:
        """Global example-weighted means: each rank's ``tensors`` are means over its ``count``
        examples; returns Σ_r count_r·t_r / Σ_r count_r (any shapes). Here: ``tensors`` as is."""
        return dict(_mean_args(tensors, count))

    def batch_means(self, values: Tensor) -> Tensor:
        """values [m, B_r] → the global per-candidate batch means [m] (float64 when reduced)."""
        return _values_arg(values).mean(dim=1)

    def synchronize_statistics(self, module: nn.Module | None) -> None:
        """With ``batchnorm="sync"``, average the BatchNorm running statistics over ranks."""

    def barrier(self) -> None:
        """Wait for every rank."""

    def __repr__(self) -> str:
        return "LOCAL"


LOCAL = Communicator()


def _mean_args(tensors: object, count: object) -> Mapping[str, Tensor]:
    """Check `Communicator.mean`'s arguments (no host sync)."""
    if not isinstance(tensors, Mapping) or not all(isinstance(v, Tensor) for v in tensors.values()):
        raise TypeError("tensors must be a dict name → tensor (this rank's means)")
    checks.integer("count", count, minimum=0)
    return tensors


def _values_arg(values: object) -> Tensor:
    if not isinstance(values, Tensor) or values.ndim != 2 or not values.is_floating_point():
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"values must be a float tensor [m, B] of candidate values, got {got}")
    return values


class ProcessGroupCommunicator(Communicator):
    """Reduces over a `torch.distributed` process group (initialized by the caller).

    Args:
        group: the process group (default: the world).
        batchnorm: ``"local"``: each rank keeps its own BatchNorm running statistics (batch
            statistics in the forwards are always the rank's shard's); ``"sync"``: after each
            step's statistics update, the running means and variances are averaged over ranks
            (one more flat all-reduce), so every rank holds the same model.
    """

    def __init__(self, group: Any = None, *, batchnorm: BatchNormMode = "local") -> None:
        super().__init__()
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "ProcessGroupCommunicator needs an initialized torch.distributed process group: "
                "call minimax.distributed.init_from_env() under torchrun first"
            )
        if batchnorm not in ("local", "sync"):
            raise ValueError(f"batchnorm must be 'local' or 'sync', got {batchnorm!r}")
        self.group = group
        # nccl reduces CUDA tensors only: CPU buffers (counts, flags) go through this device
        nccl = dist.get_backend(group) == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else None
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.batchnorm = batchnorm

    def __repr__(self) -> str:
        return (
            f"ProcessGroupCommunicator(rank={self.rank}, world_size={self.world_size}, "
            f"batchnorm={self.batchnorm!r})"
        )

    def all_reduce(self, flat: Tensor, what: str) -> Tensor:
        """Sum ``flat`` (1-D) over ranks in place; a failed peer becomes a `CollectiveError`."""
        self.bytes_sent += flat.numel() * flat.element_size()
        self.collectives += 1
        start = time.perf_counter()
        try:
            if self.device is not None and flat.device != self.device:
                moved = flat.to(self.device)
                dist.all_reduce(moved, op=dist.ReduceOp.SUM, group=self.group)
                flat.copy_(moved)
            else:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
            self.seconds += time.perf_counter() - start
        except Exception as error:  # gloo/nccl raise RuntimeError subclasses of their own
            raise CollectiveError(
                f"rank {self.rank}/{self.world_size}: all-reduce of {what} failed "
                f"({type(error).__name__}: {error}); a peer rank probably died or timed out"
            ) from error
        return flat

    def mean(self, tensors: Mapping[str, Tensor], count: int) -> dict[str, Tensor]:
        tensors = _mean_args(tensors, count)
        names = list(tensors)
        parts = [tensors[k].detach().reshape(-1) for k in names]
        dtype = parts[0].dtype if parts else torch.float64
        device = parts[0].device if parts else torch.device("cpu")
        weight = torch.tensor([float(count)], dtype=dtype, device=device)
        flat = torch.cat([p.to(dtype) * count for p in parts] + [weight])  # one buffer
        flat = self.all_reduce(flat, f"{len(names)} tensors ({flat.numel()} numbers)")
        total = flat[-1]
        out, offset = {}, 0
        for k in names:
            n = tensors[k].numel()
            chunk = flat[offset : offset + n] / total
            out[k] = chunk.reshape(tensors[k].shape).to(tensors[k].dtype)
            offset += n
        return out

    def batch_means(self, values: Tensor) -> Tensor:
        sums = _values_arg(values).detach().to(torch.float64).sum(dim=1)
        count = torch.tensor([float(values.shape[1])], dtype=torch.float64, device=values.device)
        flat = self.all_reduce(torch.cat([sums, count]), "candidate values")
        return flat[:-1] / flat[-1]

    def synchronize_statistics(self, module: nn.Module | None) -> None:
        if self.batchnorm != "sync" or module is None:
            return
        buffers = [
            b
            for m in module.modules()
            if isinstance(m, _BN_TYPES)
            for b in (m.running_mean, m.running_var)
            if b is not None
        ]
        if not buffers:
            return
        flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])
        flat = self.all_reduce(flat, "BatchNorm running statistics") / self.world_size
        offset = 0
        for b in buffers:
            b.copy_(flat[offset : offset + b.numel()].reshape(b.shape))
            offset += b.numel()

    def barrier(self) -> None:
        flat = torch.zeros(1)
        self.all_reduce(flat, "barrier")


def data_parallel(target: Problem | Engine, communicator: Communicator) -> Engine:
    """An engine over ``target``'s problem (with an engine's other options) that reduces its
    gradients and values with ``communicator`` and synchronises BatchNorm statistics.

    Rules with a data-parallel form: `Danskin`, `MaxLoss` and batch-level `DDi` (``data_parallel
    = True``); `MinMaxOptimizer` refuses the others. Per-example DDi is refused when it runs: its
    QP couples all B·m per-example gradients, which would have to be all-gathered (m·B·P
    numbers) rather than reduced.
    """
    from minimax.engine import as_engine  # the engine imports this module

    if not isinstance(communicator, Communicator):
        raise TypeError(
            f"communicator must be a minimax.distributed.Communicator, got "
            f"{type(communicator).__name__}"
        )
    out = copy.copy(as_engine(target))
    out.communicator = communicator
    return out


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s random stream: ``seed`` itself on rank 0 (so one process and
    rank 0 draw alike), a SplitMix64 mix of (seed, rank) on the others (distinct streams)."""
    seed = checks.seed("seed", seed)
    rank = checks.integer("rank", rank, minimum=0)
    if rank == 0:
        return int(seed)
    mask = (1 << 64) - 1
    z = (int(seed) * 0x9E3779B97F4A7C15 + rank * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


def init_from_env(
    timeout: float = 60.0,
    backend: str | None = None,
    *,
    batchnorm: BatchNormMode = "local",
) -> Communicator:
    """The communicator of this process: `LOCAL` without ``torchrun``'s WORLD_SIZE > 1, else
    a `ProcessGroupCommunicator` over a freshly initialized default group.

    ``timeout`` (seconds) bounds every collective; ``backend`` defaults to nccl when CUDA is
    available and gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return LOCAL
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return ProcessGroupCommunicator(batchnorm=batchnorm)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of rank ``rank``'s contiguous share of n items (sizes differ by ≤ 1)."""
    n = checks.integer("n", n, minimum=0, maximum=2**62)
    world_size = checks.integer("world_size", world_size, minimum=1)
    rank = checks.integer("rank", rank, minimum=0)
    if rank >= world_size:
        raise ValueError(
            f"rank must be in [0, world_size) = [0, {world_size}), got {rank}; pass this "
            "process's own rank (torch.distributed.get_rank())"
        )
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def split_sizes(n: int, world_size: int) -> Sequence[int]:
    """The shares of n items over ``world_size`` ranks, as `shard_bounds` cuts them."""
    world_size = checks.integer("world_size", world_size, minimum=1)
    return [b - a for a, b in (shard_bounds(n, r, world_size) for r in range(world_size))]
