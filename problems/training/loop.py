"""The adversarial-training loop, in phases: set-up, resume, epoch, step, validation,
checkpoint.

Public API::

    train(model, train_set, val_set, config, out_dir, *, resume=False, progress=True,
          augment_fn=None, max_steps=None, meta=None, overwrite=False, callback=None)
        -> RunHistory

Files written to ``out_dir`` (see `problems.training.checkpoint`): ``config.json``,
``metrics.jsonl`` (one ``{"kind": "step", ...}`` line per outer step and one
``{"kind": "epoch", ...}`` line per epoch, append-only), ``checkpoint.pt`` (every epoch and when
the run stops early) and ``best.pt``.

SIGINT / SIGTERM finish the current step, write a checkpoint (with the position inside the epoch)
and return a history whose ``status`` is ``"interrupted"``; a second signal aborts at once.

A non-finite step (NaN or Inf loss or direction, or an error of the step saying so) or a
non-finite state at a checkpoint write stops the run: nothing more is written but a
``{"kind": "stopped", "reason": ...}`` line in metrics.jsonl, so checkpoint.pt and best.pt stay
the last good state; the history's ``status`` is ``"diverged"`` and ``reason`` says why.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import minimax
from minimax import checks

from ..distributed import Ranks, evaluate_sharded, open_run_dir_ranked
from ..evaluation import evaluate
from ..files import open_append
from .checkpoint import (
    CHECKPOINT,
    METRICS,
    NonFiniteStateError,
    restore,
    save_best,
    save_checkpoint,
)
from .config import TrainConfig
from .divergence import checked_step
from .epoch_stats import EpochStats, accumulate, epoch_line, epoch_record, fmt_acc
from .history import RunHistory
from .setup import (
    AugmentFn,
    Run,
    autocast,
    check_data,
    make_problem,
    set_up,
    used_lr,
    weights_entropy,
)
from .signals import Signals

__all__ = ["train"]

Callback = Callable[[dict[str, Any]], None]


def train(
    model: nn.Module,
    train_set: tuple[Tensor, Tensor],
    val_set: tuple[Tensor, Tensor] | None,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
    augment_fn: AugmentFn | None = None,
    max_steps: int | None = None,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    callback: Callback | None = None,
    ranks: Ranks | None = None,
) -> RunHistory:
    """Adversarially train ``model`` on ``train_set`` with ``config``; write the run to ``out_dir``.

    Args:
        model: any classifier [B, ...] → logits [B, classes]; moved to ``config.device``. Its
            initial weights are the caller's (seed them before building it).
        train_set: images [N, ...] (float in [0, 1] or uint8) and int64 labels [N], on CPU.
        val_set: the same for validation (clean and PGD robust accuracy each ``eval_every``
            epochs, and ``best.pt``), or None.
        resume: continue from ``out_dir/checkpoint.pt`` (a fresh start when there is none); the
            config must equal the saved one (``device`` aside).
        progress: show a tqdm bar with the live loss and accuracy.
        augment_fn: ``(x [B, ...] float, generator) -> x`` applied to each training batch when
            ``config.augment`` (default: `problems.data.augment.default_augment`).
        max_steps: stop (with a checkpoint) once this many steps were taken in all;
            status ``"max_steps"``.
        meta: JSON-able data saved in config.json and the checkpoints (e.g. the architecture).
        overwrite: start over in an ``out_dir`` that already holds a run (else FileExistsError).
        callback: called after each step with its metrics record (the dict written to the JSONL).
        ranks: data parallelism under torchrun (`problems.distributed.Ranks`): each rank steps
            on its share of every batch; only rank 0 writes files and shows progress.

    Returns:
        the `RunHistory` (status ``"completed"``, ``"interrupted"``, ``"max_steps"`` or
        ``"diverged"``, with ``reason``: see the module docstring).
    """
    data, val_set = _checked_inputs(config, train_set, val_set, max_steps)
    out, meta = Path(out_dir), dict(meta or {})
    ranks = ranks or Ranks()
    problem = make_problem(model, config)
    state = open_run_dir_ranked(out, config, meta, resume, overwrite, ranks)
    run = set_up(model, problem, config, data[0].shape[0], out, meta=meta, augment_fn=augment_fn)
    run.optimizer.engine = ranks.engine(run.optimizer.engine)
    ranks.broadcast_model(model)
    restore(run, state, write=ranks.is_main)
    if run.epoch >= config.epochs:
        return run.history
    metrics_path = out / METRICS if ranks.is_main else Path(os.devnull)
    with Signals() as signals, open_append(metrics_path) as metrics:
        loop = _Loop(run, data, metrics, signals, max_steps, callback, progress and ranks.is_main)
        loop.ranks = ranks
        _epochs(loop, val_set)
    return run.history


def _epochs(loop: _Loop, val_set: tuple[Tensor, Tensor] | None) -> None:
    """Epochs until the last one, an early stop (checkpoint written inside the epoch), a signal
    or a divergence; the run's history says which."""
    run = loop.run
    try:
        while run.epoch < run.config.epochs:
            if loop.epoch():
                return
            _end_epoch(loop, val_set)
            if loop.signals.received is not None:
                run.history.status = "interrupted"
                return
    except (NonFiniteStateError, minimax.NonFiniteError) as error:  # a step, a validation
        _stop_diverged(loop, str(error))


def _stop_diverged(loop: _Loop, reason: str) -> None:
    """Record why the run stopped; the checkpoints on disk stay the last good state."""
    run = loop.run
    kept = run.out / CHECKPOINT
    reason = f"{reason} (stopped at step {run.step}; kept: {kept if kept.is_file() else 'none'})"
    loop.log({"kind": "stopped", "reason": reason, "epoch": run.epoch + 1, "step": run.step})
    run.history.status, run.history.reason = "diverged", reason


def _checked_inputs(
    config: TrainConfig,
    train_set: tuple[Tensor, Tensor],
    val_set: tuple[Tensor, Tensor] | None,
    max_steps: int | None,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None]:
    """Validate the data (the config validated itself when built); cut the validation set to
    ``config.eval_examples``."""
    data = check_data("train_set", train_set)
    if val_set is not None:
        val_set = check_data("val_set", val_set)
        if config.eval_examples is not None:
            val_set = (val_set[0][: config.eval_examples], val_set[1][: config.eval_examples])
    if max_steps is not None:
        checks.integer("max_steps", max_steps, minimum=0)
    return data, val_set


@dataclass
class _Loop:
    """What the epoch and step phases share: the run, the data and the run's I/O."""

    run: Run
    data: tuple[Tensor, Tensor]
    metrics: IO[str]
    signals: Signals
    max_steps: int | None
    callback: Callback | None
    progress: bool
    stats: EpochStats = dataclasses.field(default_factory=EpochStats)
    ranks: Ranks = dataclasses.field(default_factory=Ranks)

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (flushed: a crash keeps what was written)."""
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        self.run.metrics_lines += 1

    def epoch(self) -> bool:
        """One epoch (or the rest of an interrupted one); True when the run stopped early."""
        run, config = self.run, self.run.config
        n = self.data[0].shape[0]
        if run.position is None:
            perm = torch.randperm(n, generator=run.shuffle_gen)
            index, self.stats = 0, EpochStats()
        else:
            perm, index = run.position["perm"], run.position["index"]
            self.stats = EpochStats(**run.position["stats"])
            run.position = None
        run.model.train()
        bar = tqdm(
            total=run.steps_per_epoch,
            initial=self.stats.steps,
            disable=not self.progress,
            leave=False,
            desc=f"epoch {run.epoch + 1}/{config.epochs}",
            dynamic_ncols=True,
        )
        with bar:
            while index < n:
                idx = perm[index : index + config.batch_size]
                norm = self.step(idx)
                index += len(idx)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{self.stats.loss / self.stats.examples:.3f}",
                    acc=f"{self.stats.correct / self.stats.examples:.3f}",
                    norm=f"{norm:.3g}",
                    val=fmt_acc(run.history.last("robust_acc")),
                )
                if self._should_stop():
                    stats = dataclasses.asdict(self.stats)
                    if self.ranks.is_main:
                        save_checkpoint(run, {"perm": perm, "index": index, "stats": stats})
                    run.history.status = "interrupted" if self.signals.received else "max_steps"
                    return True
        return False

    def _should_stop(self) -> bool:
        reached = self.max_steps is not None and self.run.step >= self.max_steps
        return self.ranks.any(self.signals.received is not None) or reached

    def step(self, idx: Tensor) -> float:
        """One outer step on the examples ``idx``: batch, attack, rule, optimizer, records.
        Returns ‖d‖."""
        run = self.run
        t0 = time.perf_counter()
        self.ranks.reseed(run)  # per-rank streams under torchrun; no-op in one process
        x, y = _batch(run, self.data, self.ranks.local(idx))
        prep = time.perf_counter() - t0
        correct = int(self.ranks.total(_batch_correct(run.model, x, y, run.amp)))
        report = checked_step(run, (x, y))
        run.scheduler.step()
        step_wall = prep + report.seconds
        run.wall += step_wall
        run.step += 1
        entropy = weights_entropy(report.weights)
        accumulate(self.stats, report, len(idx), correct, entropy, step_wall)
        record = {
            "kind": "step",
            "epoch": run.epoch + 1,
            "step": run.step,
            "robust_loss": report.robust_loss,
            "robust_loss_after": report.robust_loss_after,
            "norm": report.norm,
            "certificate": report.certificate,
            "weights_entropy": entropy,
            "batch_clean_acc": correct / len(idx),
            "seconds": step_wall,
            "lr": used_lr(run.scheduler),
            "t": report.t,  # the line search's (None without one)
            "certified_decrease": report.certified_decrease,
            "realised_decrease": report.realised_decrease,
        }
        self.log(record)
        if self.callback is not None:
            self.callback(record)
        return report.norm


def _batch(run: Run, data: tuple[Tensor, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
    """The training batch ``idx``: float in [0, 1], augmented, on the device."""
    images, labels = data
    x = images[idx]
    x = x.float().div_(255.0) if not x.is_floating_point() else x.float()
    y = labels[idx]
    if run.augment is not None:
        x = run.augment(x, run.augment_gen)
    x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
    if run.amp and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _end_epoch(loop: _Loop, val_set: tuple[Tensor, Tensor] | None) -> None:
    """Validation, the epoch record, best.pt and the checkpoint."""
    run, config, stats = loop.run, loop.run.config, loop.stats
    run.epoch += 1
    clean_acc = robust_acc = None
    eval_seconds = 0.0
    if val_set is not None and (run.epoch % config.eval_every == 0 or run.epoch == config.epochs):
        t0 = time.perf_counter()
        result = _validate(run.model, val_set, config, loop.ranks)
        eval_seconds = time.perf_counter() - t0
        clean_acc = result["clean_acc"]
        robust_acc = result["robust_acc"][f"pgd{config.eval_steps}"]
    record = epoch_record(run, stats, clean_acc, robust_acc, eval_seconds)
    run.history.epochs.append(record)
    loop.log({"kind": "epoch", **record})
    if loop.progress:
        tqdm.write(epoch_line(record, config.epochs))
    if loop.ranks.is_main:
        if robust_acc is not None:
            save_best(run, clean_acc, robust_acc)
        save_checkpoint(run)
    elif robust_acc is not None:
        run.best_acc = max(run.best_acc, robust_acc)


def _validate(
    model: nn.Module, val_set: tuple[Tensor, Tensor], config: TrainConfig, ranks: Ranks
) -> dict:
    """Clean and PGD robust accuracy on the validation set (`problems.evaluation.evaluate`),
    sharded over the ranks under torchrun."""
    return evaluate_sharded(
        evaluate,
        model,
        val_set,
        ranks,
        eps=config.eps,
        attacks=("clean", f"pgd{config.eval_steps}"),
        restarts=config.eval_restarts,
        batch_size=max(256, config.batch_size),
        seed=config.seed,
        device=config.device,
        norm=config.threat,
    )


def _batch_correct(model: nn.Module, x: Tensor, y: Tensor, amp: bool) -> int:
    """Clean accuracy count of the batch before the step (eval mode, running statistics)."""
    model.eval()
    try:
        with torch.no_grad(), autocast(x.device, amp):
            return int((model(x).argmax(-1) == y).sum())
    finally:
        model.train()
