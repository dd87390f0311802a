"""Resumable evaluation: `minimax.evaluate` chunk by chunk, its progress written atomically
after each chunk, so that an interrupted evaluation continues to the same result, bitwise.

Public API::

    evaluate_in_chunks(model, data, attacks, *, batches, chunk, path, resume, settings,
                       **evaluate_options) -> minimax.Evaluation

The progress file (``torch.save``, through `problems.files.atomic_save`) holds the examples done,
their per-example results (`minimax.Evaluation`'s fields), the state of every attack's random
generator after them, and a key of the evaluation (the settings, and checksums of the weights and
of the data): a resume with another model, data or settings is refused. Each chunk is a whole
number of batches, so the batches, and the attacks' random streams across them, are those of one
uninterrupted pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import minimax
from minimax import checks

from .files import atomic_save

__all__ = ["evaluate_in_chunks"]

Batches = Callable[[Tensor, Tensor], Iterable[tuple[Tensor, Tensor]]]


def _key(model: nn.Module, data: tuple[Tensor, Tensor], settings: Mapping[str, Any]) -> dict:
    """What must not change between an interrupted evaluation and its resume."""
    x, y = data
    weights = [t for t in model.state_dict().values() if isinstance(t, Tensor)]
    return {
        **dict(settings),
        "n_examples": int(y.shape[0]),
        "data": [float(x.sum(dtype=torch.float64)), float(y.sum(dtype=torch.float64))],
        "weights": float(sum(t.detach().sum(dtype=torch.float64).cpu() for t in weights)),
    }


def _load(path: Path, key: dict, attacks: Mapping[str, minimax.extend.InnerSolver]) -> Any:
    """The evaluation saved in ``path`` for this ``key`` (generators restored), or None."""
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("key") != key:
        differ = sorted(k for k in key if saved.get("key", {}).get(k) != key[k])
        raise ValueError(
            f"cannot resume the evaluation in {path}: it was made with other settings, model "
            f"or data ({', '.join(differ)} differ); start afresh without --resume (resume=False)"
        )
    for label, state in saved["generators"].items():
        attacks[label].generator.set_state(state)
    return minimax.Evaluation(**saved["done"])


def evaluate_in_chunks(
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    attacks: Mapping[str, minimax.extend.InnerSolver],
    *,
    batches: Batches,
    chunk: int,
    path: str | Path,
    resume: bool,
    settings: Mapping[str, Any],
    **options: Any,
) -> minimax.Evaluation:
    """`minimax.evaluate` of ``model`` on data (x [N, ...], y [N]) under ``attacks`` {label:
    solver}, ``chunk`` examples at a time (rounded up to whole batches of ``batch_size`` in
    ``options``), writing the progress to ``path`` after each chunk.

    batches: (x, y) of a chunk → its batches on the device, ready for the model.
    resume: continue from ``path`` when it holds an evaluation with the same ``settings``
        (JSON-able), weights and data; else start afresh (overwriting it).
    options: passed to `minimax.evaluate` (eps, norm, cascade, mode, batch_size, ...).
    """
    path = Path(path)
    x, y = data
    n = int(y.shape[0])
    batch_size = int(options["batch_size"])
    chunk = max(1, math.ceil(checks.integer("chunk", chunk, minimum=1) / batch_size))
    chunk *= batch_size
    key = _key(model, data, {**settings, "chunk": chunk, "batch_size": batch_size})
    done = _load(path, key, attacks) if resume else None
    start = 0 if done is None else done.n_examples
    while start < n:
        stop = min(start + chunk, n)
        part = minimax.evaluate(
            model, batches(x[start:stop], y[start:stop]), attacks=dict(attacks), **options
        )
        done = part if done is None else minimax.Evaluation.cat([done, part])
        generators = {label: a.generator.get_state() for label, a in attacks.items()}
        atomic_save({"key": key, "done": dataclasses.asdict(done), "generators": generators}, path)
        start = stop
    assert done is not None
    return done
