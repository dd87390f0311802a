"""Checkpoint I/O of a training run: open the run directory (fresh, resumed or overwritten),
save and restore `Run`, and keep the best model.

Files in the run directory, all written through `problems.files` (atomically):
``config.json`` (the config and ``meta``, at start), ``checkpoint.pt`` (everything needed to
continue bitwise identically: model, optimizer, schedule, generators, counters, the position
inside an interrupted epoch), ``best.pt`` (the model with the best validation robust accuracy).

Public API::

    open_run_dir(out, config, meta, *, resume, overwrite) -> saved state | None
    restore(run, state)          put a saved state back into a freshly set-up `Run`
    save_checkpoint(run, position=None)
    save_best(run, clean_acc, robust_acc)
    load_checkpoint(path) -> dict
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from problems.files import atomic_save, atomic_write_text
from problems.training.config import TrainConfig
from problems.training.history import count_lines, truncate_jsonl
from problems.training.setup import Run

__all__ = ["load_checkpoint", "open_run_dir", "restore", "save_best", "save_checkpoint"]

CHECKPOINT, BEST, METRICS, CONFIG = "checkpoint.pt", "best.pt", "metrics.jsonl", "config.json"


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint.pt / best.pt on CPU (tensors and plain containers only)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def open_run_dir(
    out: Path, config: TrainConfig, meta: Mapping[str, Any], *, resume: bool, overwrite: bool
) -> dict[str, Any] | None:
    """The saved state to resume from (same config required), or None for a fresh start; a
    fresh start writes config.json (and, with ``overwrite``, deletes an earlier run's files)."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, config_path = out / CHECKPOINT, out / CONFIG
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        _check_same_config(state["config"], config, ckpt_path)
        return state
    if config_path.exists() or ckpt_path.exists():
        if not (overwrite or resume):
            raise FileExistsError(
                f"{out} already holds a run (config.json / checkpoint.pt): resume it "
                "(resume=True, `--resume`), pass overwrite=True, or choose another directory"
            )
        for name in (CHECKPOINT, BEST, METRICS):
            (out / name).unlink(missing_ok=True)
    text = json.dumps({"config": config.to_dict(), "meta": dict(meta)}, indent=2) + "\n"
    atomic_write_text(config_path, text)
    return None


def restore(run: Run, state: Mapping[str, Any] | None, *, write: bool = True) -> None:
    """Load ``state`` (from `open_run_dir`) into ``run``; cut metrics.jsonl back to the lines
    written before that checkpoint (unless ``write=False``: ranks > 0 of a data-parallel run).
    With no state, only count the lines."""
    metrics_path = run.out / METRICS
    if state is not None:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["minmax"])
        run.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        run.shuffle_gen.set_state(rng["shuffle"])
        run.augment_gen.set_state(rng["augment"])
        torch.set_rng_state(rng["torch"])
        if run.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], run.device)
        run.problem.passes.restore(tuple(state["passes"]))
        run.epoch, run.step, run.wall = state["epoch"], state["step"], state["wall"]
        run.best_acc = state["best_acc"] if state["best_acc"] is not None else -math.inf
        run.history.epochs = list(state["history"])
        run.position = state["position"]
        if write:
            truncate_jsonl(metrics_path, state["metrics_lines"])
    run.metrics_lines = count_lines(metrics_path)


def save_checkpoint(run: Run, position: dict[str, Any] | None = None) -> None:
    """Write checkpoint.pt: ``position`` is where an interrupted epoch stopped (None between
    epochs)."""
    cuda = run.device.type == "cuda"
    atomic_save(
        {
            "model": run.model.state_dict(),
            "minmax": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "epoch": run.epoch,
            "step": run.step,
            "position": position,
            "wall": run.wall,
            "passes": list(run.problem.passes.snapshot()),
            "best_acc": None if run.best_acc == -math.inf else run.best_acc,
            "rng": {
                "shuffle": run.shuffle_gen.get_state(),
                "augment": run.augment_gen.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(run.device) if cuda else None,
            },
            "history": run.history.epochs,
            "metrics_lines": run.metrics_lines,
            "config": run.config.to_dict(),
            "meta": run.meta,
        },
        run.out / CHECKPOINT,
    )


def save_best(run: Run, clean_acc: float | None, robust_acc: float) -> None:
    """Write best.pt when ``robust_acc`` beats the best so far."""
    if robust_acc <= run.best_acc:
        return
    run.best_acc = robust_acc
    atomic_save(
        {"model": run.model.state_dict(), "epoch": run.epoch, "robust_acc": robust_acc,
         "clean_acc": clean_acc, "config": run.config.to_dict(), "meta": run.meta},
        run.out / BEST,
    )  # fmt: skip


def _check_same_config(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    diff = sorted(
        k for k in set(saved) | set(current) if k != "device" and saved.get(k) != current.get(k)
    )
    if diff:
        details = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {current.get(k)!r}" for k in diff)
        raise ValueError(
            f"cannot resume {path}: the config differs ({details}). Resume with the same "
            "settings, or start a new run in another directory"
        )
