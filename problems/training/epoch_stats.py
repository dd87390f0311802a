"""An epoch's running sums over its steps (checkpointed mid-epoch), its metrics record and the
one line printed for it.

Public API::

    EpochStats                                   the running sums (a dataclass of numbers)
    accumulate(stats, report, n, correct, entropy, wall)   add one step's `minimax.StepReport`
    epoch_record(run, stats, clean_acc, robust_acc, eval_seconds) -> dict   the metrics record
    epoch_line(record, epochs) -> str            the line printed after the epoch
    fmt_acc(value) -> str                        an accuracy, "-" for None
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .setup import Run, used_lr

__all__ = ["EpochStats", "accumulate", "epoch_line", "epoch_record", "fmt_acc"]


@dataclass
class EpochStats:
    """Running sums over one epoch's steps (checkpointed mid-epoch)."""

    steps: int = 0
    examples: int = 0
    loss: float = 0.0
    correct: int = 0
    norm: float = 0.0
    certificate: float = 0.0
    certificates: int = 0
    entropy: float = 0.0
    went_up: int = 0
    remeasured: int = 0
    wall: float = 0.0


def accumulate(
    stats: EpochStats, report: Any, n: int, correct: int, entropy: float, wall: float
) -> None:
    """Add one step's `minimax.StepReport` to the epoch's running sums."""
    stats.steps += 1
    stats.examples += n
    stats.loss += report.robust_loss * n
    stats.correct += correct
    stats.norm += report.norm
    stats.entropy += entropy
    stats.wall += wall
    if report.certificate is not None:
        stats.certificate += report.certificate
        stats.certificates += 1
    if report.robust_loss_after is not None:
        stats.remeasured += 1
        stats.went_up += int(report.robust_loss_after > report.robust_loss)


def epoch_record(
    run: Run,
    stats: EpochStats,
    clean_acc: float | None,
    robust_acc: float | None,
    eval_seconds: float,
) -> dict[str, Any]:
    """The epoch's record (metrics.jsonl's ``{"kind": "epoch"}`` line without its kind), after
    ``run.epoch`` was advanced: validation accuracies (None where not validated), means over the
    steps, the pass counts and the examples seen so far."""
    fwd, bwd = run.optimizer.engine.passes.snapshot()
    seen = run.history.epochs[-1]["examples"] if run.history.epochs else 0
    return {
        "epoch": run.epoch,
        "clean_acc": clean_acc,
        "robust_acc": robust_acc,
        "train_loss": _mean(stats.loss, stats.examples),
        "train_clean_acc": _mean(stats.correct, stats.examples),
        "went_up_fraction": _mean(stats.went_up, stats.remeasured),
        "mean_norm": _mean(stats.norm, stats.steps),
        "mean_certificate": _mean(stats.certificate, stats.certificates),
        "mean_weights_entropy": _mean(stats.entropy, stats.steps),
        "lr": used_lr(run.scheduler),
        "wall": run.wall,
        "eval_seconds": eval_seconds,
        "images_per_second": stats.examples / stats.wall if stats.wall > 0 else None,
        "forward": fwd,
        "backward": bwd,
        "steps": run.step,
        "examples": seen + stats.examples,
    }


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


def fmt_acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def epoch_line(record: Mapping[str, Any], epochs: int) -> str:
    return (
        f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.4f}  "
        f"clean {fmt_acc(record['clean_acc'])}  robust {fmt_acc(record['robust_acc'])}  "
        f"|d| {record['mean_norm']:.4g}  wall {record['wall']:.1f}s"
    )
