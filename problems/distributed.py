"""The trainer and the evaluation under ``torchrun``: who holds which examples, who writes.

Public API::

    Ranks(communicator)              this process's place among the ranks (LOCAL: one process)
    Ranks.from_env(timeout, batchnorm)   from torchrun's environment (gloo on CPU, nccl on CUDA)
    Ranks.local(idx) -> idx          this rank's contiguous share of a global batch of indices
    Ranks.reseed(run)                per-step, per-rank streams for the attack and augmentation
    Ranks.total(x) -> float          a number summed over ranks
    Ranks.any(flag) -> bool          True on every rank when one rank says True
    Ranks.first_on_main(load) -> T   rank 0 loads (downloads) first, then the others
    Ranks.agree(options, what)       every rank's options compared in one collective; a
                                     difference is a RankMismatchError (on every rank)
    evaluate_sharded(evaluate, model, data, ranks, **kwargs) -> dict   exact gathered counts
    rank_file(path, ranks) -> Path   this rank's own file (a progress file per rank)

The global batch order is the same on every rank (the shuffle generator is seeded alike and
saved in the checkpoint), so rank r takes the r-th slice of each global batch: a sampler that
is sharded and reshuffled every epoch, and a resume that continues mid-epoch. Only rank 0
writes (config.json, metrics.jsonl, checkpoints, the progress bar).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

import minimax

from .evaluation import ece_from_bins

__all__ = [
    "CollectiveError",
    "RankMismatchError",
    "Ranks",
    "evaluate_sharded",
    "open_run_dir_ranked",
    "rank_file",
]

_dist = minimax.distributed
CollectiveError = _dist.CollectiveError
T = TypeVar("T")


class RankMismatchError(ValueError):
    """The ranks were started with different options (raised on every rank)."""


@dataclass
class Ranks:
    """This process's rank among ``communicator.world_size`` (one process: `LOCAL`)."""

    communicator: _dist.Communicator = _dist.LOCAL

    @classmethod
    def from_env(cls, timeout: float = 300.0, batchnorm: str = "local") -> Ranks:
        """From torchrun's WORLD_SIZE/RANK (one process without them); collectives time out
        after ``timeout`` seconds."""
        comm = _dist.init_from_env(timeout, batchnorm=batchnorm)  # type: ignore[arg-type]
        return cls(comm)

    @property
    def rank(self) -> int:
        return self.communicator.rank

    @property
    def world_size(self) -> int:
        return self.communicator.world_size

    @property
    def active(self) -> bool:
        return self.communicator.active

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and shows progress."""
        return self.rank == 0

    def device(self, device: str) -> str:
        """``cuda`` → ``cuda:LOCAL_RANK`` under torchrun (one GPU per rank); else ``device``."""
        if self.active and device == "cuda":
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        return device

    def local(self, idx: Tensor) -> Tensor:
        """This rank's contiguous share of the global batch ``idx`` (sizes differ by ≤ 1)."""
        if not self.active:
            return idx
        start, stop = _dist.shard_bounds(len(idx), self.rank, self.world_size)
        return idx[start:stop]

    def reseed(self, run: Any) -> None:
        """Seed the attack's and the augmentation's generators for the next step from (seed,
        step, rank): distinct on every rank, reproducible, and nothing to save for a resume.
        One process keeps its single streams (no-op)."""
        if not self.active:
            return
        seed = _dist.rank_seed(run.config.seed, run.step + 1)
        run.optimizer.generator.manual_seed(_dist.rank_seed(seed, self.rank + 1))
        run.augment_gen.manual_seed(_dist.rank_seed(seed + 1, self.rank + 1))

    def total(self, value: float) -> float:
        """``value`` summed over ranks (float64)."""
        if not self.active:
            return value
        flat = torch.tensor([float(value)], dtype=torch.float64)
        return float(self.communicator.all_reduce(flat, "a count")[0])  # type: ignore[attr-defined]

    def any(self, flag: bool) -> bool:
        """True everywhere when ``flag`` is True on one rank (so all ranks stop together)."""
        return self.total(float(flag)) > 0 if self.active else flag

    def barrier(self) -> None:
        self.communicator.barrier()

    def first_on_main(self, load: Callable[[], T]) -> T:
        """``load()`` on rank 0 first (it may download or extract), then on the other ranks."""
        if not self.active:
            return load()
        result = load() if self.is_main else None
        self.barrier()
        return result if result is not None else load()

    def agree(self, options: Mapping[str, Any], what: str = "the run") -> None:
        """Compare every rank's ``options`` (name → a plain value) in one collective (an
        all-gather of the dict). Any difference raises `RankMismatchError` on every rank,
        naming each differing option with its value on each rank. One process: no-op."""
        if not self.active:
            return
        gathered: list[Any] = [None] * self.world_size
        try:
            torch.distributed.all_gather_object(gathered, dict(options))
        except Exception as error:  # a peer died or timed out
            raise CollectiveError(
                f"rank {self.rank}/{self.world_size}: comparing the options of {what} failed "
                f"({type(error).__name__}: {error}); a peer rank probably died or timed out"
            ) from error
        names = sorted(set().union(*gathered))
        missing = object()
        differ = [n for n in names if len({repr(g.get(n, missing)) for g in gathered}) > 1]
        if differ:
            parts = [
                f"--{n.replace('_', '-')} ("
                + ", ".join(f"rank {r}: {g.get(n, 'not given')!r}" for r, g in enumerate(gathered))
                + ")"
                for n in differ
            ]
            raise RankMismatchError(
                f"the {self.world_size} ranks of {what} were started with different options: "
                + "; ".join(parts)
                + ". Start every rank with the same command"
            )

    def __enter__(self) -> Ranks:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        """Leave the process group: after a barrier where the block ended normally (on every
        rank alike), at once after an error (a peer may be gone)."""
        self.close(synchronize=kind is None)

    def close(self, *, synchronize: bool = False) -> None:
        """Leave the process group (if this process joined one); with ``synchronize`` (a run
        that ended normally on every rank) after a barrier, so that no rank tears its
        connections down while a peer is still using them."""
        if self.active and torch.distributed.is_initialized():
            if synchronize:
                try:
                    self.barrier()
                except Exception:  # a peer already gone: leave all the same
                    pass
            torch.distributed.destroy_process_group()

    def engine(self, engine: minimax.Engine) -> minimax.Engine:
        """``engine`` reducing over the ranks (as is in one process)."""
        return _dist.data_parallel(engine, self.communicator) if self.active else engine

    def broadcast_model(self, model: nn.Module) -> None:
        """Start every rank from rank 0's buffers (BatchNorm statistics) and parameters."""
        if not self.active:
            return
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                flat = t.detach().reshape(-1).double() * (1.0 if self.is_main else 0.0)
                t.data.copy_(
                    self.communicator.all_reduce(flat, "initial model").reshape(t.shape)  # type: ignore[attr-defined]
                )


_COUNTS = ("clean_acc", "worst_case_acc", "autoattack_first_two")
_MEANS = ("clean_confidence", "adversarial_confidence")


def evaluate_sharded(
    evaluate: Callable[..., dict[str, Any]],
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    ranks: Ranks,
    **kwargs: Any,
) -> dict[str, Any]:
    """``evaluate(model, data, **kwargs)`` with the examples split over the ranks (each rank
    writes its own ``progress_file``, `rank_file`, when one is given).

    Each rank evaluates its contiguous shard; accuracies are gathered as exact integer counts
    (accuracy × shard size, rounded) and divided by the global N, confidences as example-weighted
    means, the calibration errors from their per-bin sums (exact: ECE is a sum over bins of
    |Σ correct − Σ confidence| / N). One process: ``evaluate`` as is.
    """
    if not ranks.active:
        return evaluate(model, data, **kwargs)
    x, y = data
    n = int(x.shape[0])
    start, stop = _dist.shard_bounds(n, ranks.rank, ranks.world_size)
    if stop <= start:
        raise ValueError(f"{n} examples cannot be shared by {ranks.world_size} ranks: use fewer")
    if kwargs.get("progress_file") is not None:  # one progress file per rank
        kwargs["progress_file"] = rank_file(Path(kwargs["progress_file"]), ranks)
    local = evaluate(model, (x[start:stop], y[start:stop]), **kwargs)
    return _merge(local, stop - start, n, ranks)


def rank_file(path: Path, ranks: Ranks) -> Path:
    """``path`` for this rank: as is in one process, ``name.rank<r>of<world>`` under torchrun."""
    if not ranks.active:
        return path
    return path.with_name(f"{path.name}.rank{ranks.rank}of{ranks.world_size}")


def _merge(local: Mapping[str, Any], n_local: int, n: int, ranks: Ranks) -> dict[str, Any]:
    """One flat all-reduce of [correct counts ‖ confidence sums ‖ seconds]; see evaluate_sharded."""
    robust = dict(local["robust_acc"])
    keys = [k for k in _COUNTS if local.get(k) is not None]
    counts = [round(local[k] * n_local) for k in keys] + [
        round(a * n_local) for a in robust.values()
    ]
    means = [k for k in _MEANS if local.get(k) is not None]
    seconds = dict(local["seconds"])
    calibration = {k: v for k, v in local.get("calibration_bins", {}).items() if v is not None}
    bins = [value for rows in calibration.values() for row in rows for value in row]
    flat = torch.tensor(
        counts + [local[k] * n_local for k in means] + list(seconds.values()) + bins,
        dtype=torch.float64,
    )
    flat = ranks.communicator.all_reduce(flat, "evaluation counts")  # type: ignore[attr-defined]
    values = flat.tolist()
    out = dict(local)
    for i, k in enumerate(keys):
        out[k] = values[i] / n
    for j, a in enumerate(robust):
        robust[a] = values[len(keys) + j] / n
    out["robust_acc"] = robust
    base = len(keys) + len(robust)
    for j, k in enumerate(means):
        out[k] = values[base + j] / n
    base += len(means)
    out["seconds"] = dict(zip(seconds, values[base : base + len(seconds)]))  # summed over ranks
    base += len(seconds)
    merged: dict[str, Any] = {}
    for name, rows in calibration.items():  # the same bins on every rank: sums add up
        width = len(rows[0])
        merged[name] = [values[base + r * width : base + (r + 1) * width] for r in range(3)]
        base += 3 * width
    out["calibration_bins"] = {k: merged.get(k) for k in local.get("calibration_bins", {})}
    out.update(
        n_examples=n,
        clean_ece=ece_from_bins(merged["clean"]) if "clean" in merged else None,
        adversarial_ece=ece_from_bins(merged["adversarial"]) if "adversarial" in merged else None,
        ranks=ranks.world_size,
    )
    record = out.get("robustbench")
    if record is not None:  # the local shard's record, rewritten with the global accuracies
        key = "autoattack_acc" if "autoattack_acc" in record else "robust_acc"
        record = dict(record, clean_acc=f"{100 * out['clean_acc']:.2f}")
        record[key] = f"{100 * out['worst_case_acc']:.2f}"
        note = record["footnote"]
        record["footnote"] = note.replace(f"on {n_local} examples", f"on {n} examples")
        out["robustbench"] = record
    return out


def open_run_dir_ranked(
    out: Path, config: Any, meta: Mapping[str, Any], resume: bool, overwrite: bool, ranks: Ranks
) -> dict[str, Any] | None:
    """`problems.training.checkpoint.open_run_dir` on rank 0 (which writes), then the same saved
    state read by the other ranks; a failure on rank 0 is raised on every rank."""
    from .training.checkpoint import CHECKPOINT, load_checkpoint, open_run_dir

    if not ranks.active:
        return open_run_dir(out, config, meta, resume=resume, overwrite=overwrite)
    state, failure = None, None
    if ranks.is_main:
        try:
            state = open_run_dir(out, config, meta, resume=resume, overwrite=overwrite)
        except (OSError, ValueError) as error:
            failure = error
    if ranks.any(failure is not None):  # also the barrier: rank 0 has written config.json
        if failure is not None:
            raise failure
        raise ValueError(f"rank 0 could not open the run directory {out}: see its error")
    if not ranks.is_main and resume and (out / CHECKPOINT).is_file():
        state = load_checkpoint(out / CHECKPOINT)
    return state
