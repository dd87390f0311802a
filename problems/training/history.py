"""A run's records: `RunHistory`, reading a run directory back, and the metrics JSONL file.

Public API::

    RunHistory(config, epochs, out_dir, status, meta)   .steps(), .last(key), .best(key)
    load_history(run_dir) -> RunHistory
    read_jsonl(path) -> list[dict]; count_lines(path) -> int; truncate_jsonl(path, lines)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from .config import TrainConfig

__all__ = ["RunHistory", "count_lines", "load_history", "read_jsonl", "truncate_jsonl"]


@dataclass
class RunHistory:
    """A run's config and per-epoch records.

    epochs: one dict per finished epoch with (at least) ``epoch``, ``clean_acc`` and
        ``robust_acc`` (validation; None when not evaluated), ``train_loss`` (mean robust-loss
        estimate over the epoch's steps), ``train_clean_acc`` (clean accuracy of the training
        batches before their step), ``went_up_fraction`` (None unless ``remeasure``),
        ``mean_norm`` (‖d‖), ``mean_certificate`` (None when the rule has none),
        ``mean_weights_entropy``, ``lr``, ``wall`` (cumulative training seconds, evaluation
        excluded), ``eval_seconds``, ``forward``/``backward`` (cumulative passes over a batch),
        ``steps`` and ``examples`` (cumulative), ``images_per_second``.
    status: ``"completed"``, ``"interrupted"`` (a signal), ``"max_steps"`` or ``"diverged"``
        (a non-finite step or state; see ``reason``).
    meta: free-form data the caller attached (e.g. the architecture).
    reason: why a ``"diverged"`` run stopped (also in metrics.jsonl), else None.
    """

    config: TrainConfig
    epochs: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    status: str = "completed"
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def steps(self) -> list[dict[str, Any]]:
        """The per-step records, read from ``out_dir/metrics.jsonl``."""
        if self.out_dir is None:
            return []
        return [r for r in read_jsonl(self.out_dir / "metrics.jsonl") if r.get("kind") == "step"]

    def last(self, key: str) -> Any:
        """The last non-None value of ``key`` over the epochs (None if there is none)."""
        for record in reversed(self.epochs):
            if record.get(key) is not None:
                return record[key]
        return None

    def best(self, key: str = "robust_acc") -> Any:
        """The largest non-None value of ``key`` over the epochs (None if there is none)."""
        values = [r[key] for r in self.epochs if r.get(key) is not None]
        return max(values) if values else None


def load_history(run_dir: str | os.PathLike[str]) -> RunHistory:
    """Read a run's config.json and the epoch lines of its metrics.jsonl."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run: no config.json in it")
    try:
        saved = json.loads(config_path.read_text())
        config = TrainConfig.from_dict(saved["config"])
    except (ValueError, KeyError, TypeError) as error:  # corrupt, or not written by minimax
        raise ValueError(
            f"{config_path} is not a run's config.json as `minimax train` writes it "
            f"({type(error).__name__}: {' '.join(str(error).split())[:120]})"
        ) from None
    records = read_jsonl(run_dir / "metrics.jsonl")
    epochs = [
        {k: v for k, v in r.items() if k != "kind"} for r in records if r.get("kind") == "epoch"
    ]
    status = "completed" if epochs and epochs[-1]["epoch"] >= config.epochs else "interrupted"
    reason = None
    if records and records[-1].get("kind") == "stopped":
        status, reason = "diverged", records[-1].get("reason")
    return RunHistory(config, epochs, run_dir, status, dict(saved.get("meta") or {}), reason)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (none when it does not exist); a line that is not a
    JSON object is a ValueError naming the file and the line."""
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: not a JSON object")
            out.append(record)
    return out


def count_lines(path: Path) -> int:
    """Lines in ``path`` (0 when it does not exist)."""
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def truncate_jsonl(path: Path, lines: int) -> None:
    """Keep the first ``lines`` lines (those written before the checkpoint), atomically."""
    if not path.is_file():
        if lines:
            raise FileNotFoundError(f"{path} is missing but the checkpoint expects {lines} lines")
        return
    with open(path, "rb") as f:
        kept = [line for _, line in zip(range(lines), f)]
    if len(kept) < lines:
        raise ValueError(f"{path} has {len(kept)} lines but the checkpoint expects {lines}")
    atomic_write_text(path, b"".join(kept).decode())
