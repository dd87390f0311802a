"""Set-up of a training run: the pieces (problem, optimizer, schedule, attack, rule, generators)
and `Run`, the state the loop advances and a checkpoint saves.

Public API::

    Run                                   the live state of one run (pieces + counters);
                                          .state_dict(), .load_state_dict(state)
    make_problem(model, config) -> minimax.ModuleProblem
    set_up(model, problem, config, n_train, out, *, meta, augment_fn) -> Run
    check_data(name, data) -> (images [N, ...], labels [N])
    LRFactor(schedule, epochs, steps_per_epoch)   the learning-rate multiplier at step t
    used_lr(scheduler) -> float           the learning rate the last step used
    weights_entropy(weights) -> float     entropy of QP weights ([m] or [B, m])
    autocast(device, amp)                 bf16 autocast on CUDA when ``amp``
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import minimax

from ..data.augment import default_augment
from ..threats import make_perturbation
from .config import TrainConfig
from .history import RunHistory
from .rules import build_rule

__all__ = [
    "AugmentFn",
    "LRFactor",
    "Run",
    "autocast",
    "check_data",
    "make_problem",
    "set_up",
    "used_lr",
    "weights_entropy",
]

AugmentFn = Callable[[Tensor, torch.Generator], Tensor]


@dataclass
class Run:
    """One training run: its pieces, and the counters a checkpoint saves and a resume restores.

    position: where an interrupted epoch stopped (``perm``, ``index``, ``stats``), or None.
    metrics_lines: lines of ``metrics.jsonl`` written so far (a resume truncates to it).
    """

    config: TrainConfig
    model: nn.Module
    problem: minimax.ModuleProblem
    optimizer: minimax.MinMaxOptimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    shuffle_gen: torch.Generator
    augment_gen: torch.Generator
    augment: AugmentFn | None
    device: torch.device
    amp: bool
    steps_per_epoch: int
    history: RunHistory
    meta: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    step: int = 0
    wall: float = 0.0
    best_acc: float = -math.inf
    position: dict[str, Any] | None = None
    metrics_lines: int = 0

    @property
    def out(self) -> Path:
        """The run directory."""
        assert self.history.out_dir is not None
        return self.history.out_dir

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs to continue bitwise: the model, the min-max optimizer's
        state (`minimax.MinMaxOptimizer.state_dict`: torch optimizer, rule, generator, passes),
        the schedule, the data generators and the global RNG, the counters, the history, and the
        config and meta it was made with (checked on resume, not restored)."""
        cuda = self.device.type == "cuda"
        return {
            "model": self.model.state_dict(),
            "minmax": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "position": self.position,
            "wall": self.wall,
            "best_acc": None if self.best_acc == -math.inf else self.best_acc,
            "rng": {
                "shuffle": self.shuffle_gen.get_state(),
                "augment": self.augment_gen.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
            },
            "history": self.history.epochs,
            "metrics_lines": self.metrics_lines,
            "config": self.config.to_dict(),
            "meta": self.meta,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Put a `state_dict` back into this freshly set-up run; weights that do not fit the
        model, or a missing entry, are a ValueError."""
        missing = sorted(set(self.state_dict()) - set(state) - {"config", "meta"})
        if missing:
            raise ValueError(f"not a training run's state: missing {missing}")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:  # the config check passed, yet the weights do not fit
            raise ValueError(
                f"the saved weights do not fit the model ({str(error).splitlines()[0]})"
            ) from None
        self.optimizer.load_state_dict(state["minmax"])
        if "passes" in state:  # written beside the optimizer's state by older versions
            self.optimizer.engine.passes.restore(tuple(state["passes"]))
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        self.shuffle_gen.set_state(rng["shuffle"])
        self.augment_gen.set_state(rng["augment"])
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.epoch, self.step, self.wall = state["epoch"], state["step"], state["wall"]
        self.best_acc = state["best_acc"] if state["best_acc"] is not None else -math.inf
        self.history.epochs = list(state["history"])
        self.position = state["position"]
        self.metrics_lines = state["metrics_lines"]


def make_problem(model: nn.Module, config: TrainConfig) -> minimax.ModuleProblem:
    """The training problem: ``model`` under the config's threat; refuses per-example DDi when
    BatchNorm couples the examples."""
    model.train()
    problem = minimax.ModuleProblem(
        model,
        # an L∞ eps over 1 is the user's choice here: the CLI asks for --allow-large-eps
        perturbation=make_perturbation(config.threat, config.eps, allow_large_eps=True),
        batchnorm=config.batchnorm,  # type: ignore[arg-type]
    )
    if config.rule == "ddi-example" and problem.examples_coupled:
        raise ValueError(
            "rule 'ddi-example' needs examples that do not share batch statistics, but the model "
            "has BatchNorm in train mode: use batchnorm='eval' (`--batchnorm eval`), a model "
            "without BatchNorm (`--normalization group` or `--normalization none`), or rule 'ddi'"
        )
    return problem


def set_up(
    model: nn.Module,
    problem: minimax.ModuleProblem,
    config: TrainConfig,
    n_train: int,
    out: Path,
    *,
    meta: dict[str, Any],
    augment_fn: AugmentFn | None,
) -> Run:
    """Move the model to the device and build the optimizer, schedule, attack and rule."""
    device = torch.device(config.device)
    amp = config.amp and device.type == "cuda"
    model.to(device)
    if amp:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = problem.parameters()
    sgd = torch.optim.SGD(
        params.values(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        sgd, LRFactor(config.schedule, config.epochs, steps_per_epoch)
    )
    inner = minimax.PGD(config.steps, config.step_size, restarts=config.restarts, seed=config.seed)
    optimizer = minimax.MinMaxOptimizer(
        problem,
        sgd,
        inner,
        build_rule(config.rule),
        remeasure=config.remeasure,
        step_size="armijo" if config.line_search == "armijo" else None,
    )
    return Run(
        config,
        model,
        problem,
        optimizer,
        scheduler,
        shuffle_gen=torch.Generator().manual_seed(config.seed),
        augment_gen=torch.Generator().manual_seed(config.seed + 1),
        augment=(augment_fn or default_augment) if config.augment else None,
        device=device,
        amp=amp,
        steps_per_epoch=steps_per_epoch,
        history=RunHistory(config, [], out, "completed", meta),
        meta=meta,
    )


class LRFactor:
    """The learning-rate multiplier at global step t (a callable object, so LambdaLR saves it)."""

    def __init__(self, schedule: str, epochs: int, steps_per_epoch: int) -> None:
        self.schedule = schedule
        self.total = max(1, epochs * steps_per_epoch)

    def __call__(self, step: int) -> float:
        t = step / self.total  # fraction of training done
        if self.schedule == "piecewise":
            return 1.0 if t < 0.5 else (0.1 if t < 0.75 else 0.01)
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
        return 1.0


def used_lr(scheduler: torch.optim.lr_scheduler.LRScheduler) -> float:
    """The learning rate the last step used (the scheduler has already moved on by one)."""
    factor = scheduler.lr_lambdas[0]  # type: ignore[attr-defined]
    base = scheduler.base_lrs[0]
    return float(base * factor(max(scheduler.last_epoch - 1, 0)))


def weights_entropy(weights: Tensor) -> float:
    """Entropy of QP weights: [m] → H(w); [B, m] → mean over rows (0 log 0 = 0)."""
    w = weights.detach().double().clamp_min(0)
    h = -(torch.where(w > 0, w * w.log(), torch.zeros_like(w))).sum(-1)
    return float(h.mean())


def check_data(name: str, data: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``data`` as (images [N, ...], labels [N]) with N ≥ 1; else a TypeError / ValueError."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a tuple (images [N, ...], labels [N])")
    x, y = data
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"{name} must hold tensors")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{name}: {x.shape[0]} images and {y.shape[0]} labels (need N ≥ 1, equal)")
    return x, y


@contextlib.contextmanager
def autocast(device: torch.device, amp: bool) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``amp``; a no-op otherwise."""
    if not amp:
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield
