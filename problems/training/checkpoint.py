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
    load_checkpoint(path, *, finite=True) -> dict
    first_non_finite(obj) -> str | None      the first NaN/Inf float tensor in nested containers
    NonFiniteStateError                      (ValueError) refusing to write or load such a state

Nothing non-finite is ever written: `save_checkpoint` and `save_best` check every float tensor
(weights, buffers, momentum) first and raise `NonFiniteStateError`, so the previous file stays
the last good state. `load_checkpoint` refuses such files too (unless ``finite=False``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_save, atomic_write_text, load_tensors, remove_orphans
from .config import TrainConfig, upgrade_saved
from .history import count_lines, truncate_jsonl
from .setup import Run

__all__ = [
    "NonFiniteStateError",
    "first_non_finite",
    "load_checkpoint",
    "open_run_dir",
    "restore",
    "save_best",
    "save_checkpoint",
]

CHECKPOINT, BEST, METRICS, CONFIG = "checkpoint.pt", "best.pt", "metrics.jsonl", "config.json"
#: meta entries that may change on resume (where the data lives is not part of the recipe)
_MAY_CHANGE = frozenset({"device", "data_dir"})


class NonFiniteStateError(ValueError):
    """A model or optimizer state holding NaN or Inf: never written, refused when loaded."""


def _float_tensors(obj: Any, prefix: str) -> list[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) for every floating-point tensor in nested dicts / lists / tuples."""
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)] if obj.is_floating_point() or obj.is_complex() else []
    items: Any = ()
    if isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    found = []
    for key, value in items:
        found += _float_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    return found


def first_non_finite(obj: Any, prefix: str = "") -> str | None:
    """The name of the first float tensor in ``obj`` (nested containers) holding NaN or Inf, or
    None when all are finite; one device sync for the whole check."""
    tensors = _float_tensors(obj, prefix)
    if not tensors:
        return None
    flags = torch.stack([t.detach().isfinite().all().cpu() for _, t in tensors])
    if bool(flags.all()):
        return None
    return tensors[int((~flags).nonzero()[0])][0]


def _refuse_non_finite(obj: Any, what: str, prefix: str = "") -> None:
    name = first_non_finite(obj, prefix)
    if name is not None:
        raise NonFiniteStateError(
            f"{what}: {name} holds non-finite values, NaN or Inf (the training diverged). Nothing "
            "was written or "
            "loaded; the last good checkpoint is the previous file"
        )


def load_checkpoint(path: str | os.PathLike[str], *, finite: bool = True) -> dict[str, Any]:
    """Load a checkpoint.pt / best.pt (or any weights file) on CPU, tensors and plain containers
    only; with ``finite`` a file holding a NaN or Inf float tensor is a `NonFiniteStateError`."""
    state = load_tensors(path)  # an unreadable file: UnreadableFileError (a ValueError)
    if finite:
        _refuse_non_finite(state, f"refusing to load {path}")
    return state


def open_run_dir(
    out: Path, config: TrainConfig, meta: Mapping[str, Any], *, resume: bool, overwrite: bool
) -> dict[str, Any] | None:
    """The saved state to resume from (same config required), or None for a fresh start; a
    fresh start writes config.json (and, with ``overwrite``, deletes an earlier run's files)."""
    out.mkdir(parents=True, exist_ok=True)
    remove_orphans(out, (CHECKPOINT, BEST, METRICS, CONFIG))  # left by a killed write
    ckpt_path, config_path = out / CHECKPOINT, out / CONFIG
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise ValueError(f"{ckpt_path} is not a checkpoint written by `minimax train`")
        _check_same_config(state["config"], state.get("meta") or {}, config, meta, ckpt_path)
        return state
    if resume and config_path.is_file():  # stopped before its first checkpoint: start afresh
        saved = json.loads(config_path.read_text())
        _check_same_config(saved["config"], saved.get("meta") or {}, config, meta, config_path)
    if config_path.exists() or ckpt_path.exists():
        if not (overwrite or resume):
            raise FileExistsError(
                f"{out} already holds a run (config.json / checkpoint.pt): continue it with "
                "--resume (resume=True), start over with --overwrite (overwrite=True; deletes "
                "its checkpoints and metrics), or choose another directory"
            )
        for name in (CHECKPOINT, BEST, METRICS):
            (out / name).unlink(missing_ok=True)
    text = json.dumps({"config": config.to_dict(), "meta": dict(meta)}, indent=2) + "\n"
    atomic_write_text(config_path, text)
    return None


def restore(run: Run, state: Mapping[str, Any] | None, *, write: bool = True) -> None:
    """Load ``state`` (from `open_run_dir`) into ``run`` (`Run.load_state_dict`); cut
    metrics.jsonl back to the lines written before that checkpoint (unless ``write=False``:
    ranks > 0 of a data-parallel run). With no state, only count the lines."""
    metrics_path = run.out / METRICS
    if state is not None:
        try:
            run.load_state_dict(state)
        except ValueError as error:
            raise ValueError(
                f"cannot resume from {run.out / CHECKPOINT}: {error}; start over with --overwrite"
            ) from None
        if write:
            truncate_jsonl(metrics_path, state["metrics_lines"])
    run.metrics_lines = count_lines(metrics_path)


def save_checkpoint(run: Run, position: dict[str, Any] | None = None) -> None:
    """Write checkpoint.pt (`Run.state_dict`): ``position`` is where an interrupted epoch stopped
    (None between epochs)."""
    run.position = position
    state = run.state_dict()
    _refuse_non_finite(state, f"refusing to write {CHECKPOINT}")
    atomic_save(state, run.out / CHECKPOINT)


def save_best(run: Run, clean_acc: float | None, robust_acc: float) -> None:
    """Write best.pt when ``robust_acc`` beats the best so far."""
    if robust_acc <= run.best_acc:
        return
    model = run.model.state_dict()
    _refuse_non_finite(model, f"refusing to write {BEST}", "model")
    run.best_acc = robust_acc
    atomic_save(
        {
            "model": model,
            "epoch": run.epoch,
            "robust_acc": robust_acc,
            "clean_acc": clean_acc,
            "config": run.config.to_dict(),
            "meta": run.meta,
        },
        run.out / BEST,
    )


def _check_same_config(
    saved: Mapping[str, Any],
    saved_meta: Mapping[str, Any],
    config: TrainConfig,
    meta: Mapping[str, Any],
    path: Path,
) -> None:
    """Compare the whole saved recipe (config and meta: model, data, splits) with the current
    one; one ValueError lists every difference."""
    saved_meta, saved = upgrade_saved(saved_meta, saved)
    before = {**_flat(saved_meta), **dict(saved)}
    now = {**_flat(meta), **config.to_dict()}
    diff = sorted(
        k for k in set(before) | set(now) if k not in _MAY_CHANGE and before.get(k) != now.get(k)
    )
    if diff:
        details = "; ".join(f"{k}: saved {before.get(k)!r}, now {now.get(k)!r}" for k in diff)
        raise ValueError(
            f"cannot resume {path}: the settings differ ({details}). Resume with the saved "
            "settings, start over with --overwrite (overwrite=True), or choose another directory"
        )


def _flat(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model": {"name": ..}}`` → ``{"model.name": ..}`` (one level, for readable diffs)."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out
