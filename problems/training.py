"""A reusable, resumable adversarial-training loop over any in-memory image data set.

Public API (shapes: N examples, B batch; images [N, ...] float in [0, 1] or uint8 in [0, 255],
labels int64 [N])::

    TrainConfig(...)                                   the recipe (rule, m, schedule, attack, ...)
    train(model, train_set, val_set, config, out_dir, *, resume=False, progress=True,
          augment_fn=None, max_steps=None, meta=None, overwrite=False, callback=None)
        -> RunHistory
    load_history(run_dir) -> RunHistory
    RunHistory(config, epochs, out_dir, status, meta).steps() -> list[dict]   (per-step records)
    RULES, SCHEDULES                                   the accepted names

Files written to ``out_dir``:

- ``config.json``: the config (and ``meta``: e.g. the model's architecture) at start;
- ``metrics.jsonl``: one ``{"kind": "step", ...}`` line per outer step and one
  ``{"kind": "epoch", ...}`` line per epoch (append-only);
- ``checkpoint.pt``: written atomically every epoch and when the run stops early (a signal or
  ``max_steps``); holds everything needed to continue bitwise identically;
- ``best.pt``: the model with the best validation robust accuracy so far.

SIGINT / SIGTERM finish the current step, write a checkpoint (with the position inside the epoch)
and return a history whose ``status`` is ``"interrupted"``; a second signal aborts at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import minimax
from problems.cifar10 import augment as _crop_flip

__all__ = [
    "RULES",
    "SCHEDULES",
    "RunHistory",
    "TrainConfig",
    "load_history",
    "make_rule",
    "train",
]

RULES: tuple[str, ...] = ("danskin", "maxloss", "ddi", "ddi-example")
SCHEDULES: tuple[str, ...] = ("piecewise", "cosine", "constant")
NORMS: tuple[str, ...] = ("linf", "l2")
BATCHNORM: tuple[str, ...] = ("per_restart", "eval")

#: fields of metrics records that hold wall-clock measurements (they differ between runs)
TIME_FIELDS: frozenset[str] = frozenset(
    {"seconds", "wall", "eval_seconds", "images_per_second"}
)

AugmentFn = Callable[[Tensor, torch.Generator], Tensor]


@dataclass
class TrainConfig:
    """The training recipe. Defaults follow Rice et al. 2020 (robust overfitting) for CIFAR-10.

    rule: ``"danskin"`` (PGD-AT: the gradient at the best restart), ``"maxloss"`` (each
        example's worst restart), ``"ddi"`` (min-norm hull of the m batch gradients) or
        ``"ddi-example"`` (per-example DDi, the exact Danskin set of the batch loss).
    restarts: m, the PGD restarts of the training attack (candidates per example).
    schedule: ``"piecewise"`` (lr ÷10 at 50% and 75% of the epochs), ``"cosine"`` or
        ``"constant"``; the learning rate is updated every step.
    eps, step_size, steps, norm: the training attack, PGD in the ``norm`` ball with x + δ in [0, 1].
    eval_steps, eval_restarts, eval_every, eval_examples: validation robust accuracy (PGD with
        step 2.5·eps/eval_steps) every ``eval_every`` epochs, on at most ``eval_examples`` examples.
    remeasure: re-run the attack after each step to report the fraction of steps whose batch
        robust loss went up (costs one more attack per step; not counted in ``wall``).
    amp: CUDA only: bf16 autocast and channels_last (Gram matrices and QPs stay float64).
    batchnorm: `minimax.ModuleProblem`'s BatchNorm policy (``"per_restart"`` or ``"eval"``).
    """

    rule: str = "danskin"
    restarts: int = 1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "piecewise"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    norm: str = "linf"
    eval_steps: int = 20
    eval_restarts: int = 1
    eval_every: int = 1
    eval_examples: int | None = None
    augment: bool = True
    remeasure: bool = False
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    batchnorm: str = "per_restart"

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        _choice("rule", self.rule, RULES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("norm", self.norm, NORMS)
        _choice("batchnorm", self.batchnorm, BATCHNORM)
        for name in ("restarts", "epochs", "batch_size", "eval_restarts", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("steps", "eval_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("lr", "momentum", "weight_decay", "eps", "step_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
        if self.eval_examples is not None and self.eval_examples < 1:
            raise ValueError(f"eval_examples must be ≥ 1 or None, got {self.eval_examples!r}")
        if self.amp and not str(self.device).startswith("cuda"):
            raise ValueError("amp=True needs a CUDA device (device='cuda'); it is CUDA only")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**dict(data))


def _choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


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
    status: ``"completed"``, ``"interrupted"`` (a signal) or ``"max_steps"``.
    meta: free-form data the caller attached (e.g. the architecture).
    """

    config: TrainConfig
    epochs: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    status: str = "completed"
    meta: dict[str, Any] = field(default_factory=dict)

    def steps(self) -> list[dict[str, Any]]:
        """The per-step records, read from ``out_dir/metrics.jsonl``."""
        if self.out_dir is None:
            return []
        return [r for r in _read_jsonl(self.out_dir / "metrics.jsonl") if r.get("kind") == "step"]

    def last(self, key: str) -> Any:
        """The last non-None value of ``key`` over the epochs (None if there is none)."""
        for record in reversed(self.epochs):
            if record.get(key) is not None:
                return record[key]
        return None

    def best(self, key: str = "robust_acc") -> Any:
        values = [r[key] for r in self.epochs if r.get(key) is not None]
        return max(values) if values else None


def load_history(run_dir: str | os.PathLike[str]) -> RunHistory:
    """Read a run's config.json and the epoch lines of its metrics.jsonl."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run: no config.json in it")
    saved = json.loads(config_path.read_text())
    config = TrainConfig.from_dict(saved["config"])
    records = _read_jsonl(run_dir / "metrics.jsonl")
    epochs = [
        {k: v for k, v in r.items() if k != "kind"} for r in records if r.get("kind") == "epoch"
    ]
    status = "completed" if epochs and epochs[-1]["epoch"] >= config.epochs else "interrupted"
    return RunHistory(config, epochs, run_dir, status, dict(saved.get("meta") or {}))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


# ------------------------------------------------------------------------------------------------
# building blocks


def make_rule(name: str) -> minimax.Rule:
    """The `minimax` rule for a config name (see `RULES`)."""
    _choice("rule", name, RULES)
    if name == "danskin":
        return minimax.Danskin()
    if name == "maxloss":
        return minimax.MaxLoss()
    if name == "ddi":
        return minimax.DDi()
    return minimax.DDi(per_example=True)


def make_perturbation(norm: str, eps: float) -> minimax.PerturbationSet:
    """The ε-ball of ``norm`` ("linf" or "l2") with x + δ kept in [0, 1]."""
    _choice("norm", norm, NORMS)
    ball = minimax.LinfBall if norm == "linf" else minimax.L2Ball
    return ball(eps, lower=0.0, upper=1.0)


class _LRFactor:
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


def default_augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random crop (zero padding 4, or 1 for images under 16 pixels) then a horizontal flip."""
    if x.ndim != 4:
        return x
    padding = 4 if min(x.shape[-2:]) >= 16 else 1
    return _crop_flip(x, padding=padding, generator=generator)


def weights_entropy(weights: Tensor) -> float:
    """Entropy of QP weights: [m] → H(w); [B, m] → mean over rows (0 log 0 = 0)."""
    w = weights.detach().double().clamp_min(0)
    h = -(torch.where(w > 0, w * w.log(), torch.zeros_like(w))).sum(-1)
    return float(h.mean())


def _to_float(x: Tensor) -> Tensor:
    return x.float().div_(255.0) if not x.is_floating_point() else x.float()


def _check_data(name: str, data: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a tuple (images [N, ...], labels [N])")
    x, y = data
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"{name} must hold tensors")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{name}: {x.shape[0]} images and {y.shape[0]} labels (need N ≥ 1, equal)")
    return x, y


# ------------------------------------------------------------------------------------------------
# checkpoints


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same directory, fsync, then os.replace onto ``path``.

    A crash while writing leaves the previous file intact (and no temp file behind).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename (not supported everywhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint.pt / best.pt on CPU (tensors and plain containers only)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


class _Signals:
    """Turns SIGINT/SIGTERM into a flag; a second signal raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


@dataclass
class _EpochStats:
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


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


# ------------------------------------------------------------------------------------------------
# the loop


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
    callback: Callable[[dict[str, Any]], None] | None = None,
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
            ``config.augment`` (default: `default_augment`, random crop + flip).
        max_steps: stop (with a checkpoint) once this many steps were taken in all;
            status ``"max_steps"``.
        meta: JSON-able data saved in config.json and the checkpoints (e.g. the architecture).
        overwrite: start over in an ``out_dir`` that already holds a run (else FileExistsError).
        callback: called after each step with its metrics record (the dict written to the JSONL).

    Returns:
        the `RunHistory` (status ``"completed"``, ``"interrupted"`` or ``"max_steps"``).
    """
    config.validate()
    images, labels = _check_data("train_set", train_set)
    if val_set is not None:
        val_set = _check_data("val_set", val_set)
        if config.eval_examples is not None:
            val_set = (val_set[0][: config.eval_examples], val_set[1][: config.eval_examples])
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be ≥ 0 or None, got {max_steps}")
    out = Path(out_dir)
    model.train()
    problem = minimax.ModuleProblem(
        model, perturbation=make_perturbation(config.norm, config.eps),
        batchnorm=config.batchnorm,  # type: ignore[arg-type]
    )
    if config.rule == "ddi-example" and problem.examples_coupled:
        raise ValueError(
            "rule 'ddi-example' needs examples that do not share batch statistics, but the model "
            "has BatchNorm in train mode: use batchnorm='eval' (`--batchnorm eval`), a model "
            "without BatchNorm (`--norm group` or `--norm none`), or rule 'ddi'"
        )
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    ckpt_path, metrics_path, config_path = (
        out / "checkpoint.pt", out / "metrics.jsonl", out / "config.json"
    )

    state: dict[str, Any] | None = None
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        _check_same_config(state["config"], config, ckpt_path)
    elif config_path.exists() or ckpt_path.exists():
        if not (overwrite or resume):
            raise FileExistsError(
                f"{out} already holds a run (config.json / checkpoint.pt): resume it "
                "(resume=True, `--resume`), pass overwrite=True, or choose another directory"
            )
        for name in ("checkpoint.pt", "best.pt", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
    if state is None:
        _atomic_write_text(
            config_path, json.dumps({"config": config.to_dict(), "meta": meta}, indent=2) + "\n"
        )

    # -- the pieces ------------------------------------------------------------------------------
    device = torch.device(config.device)
    amp = config.amp and device.type == "cuda"
    model.to(device)
    if amp:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = problem.parameters()
    optimizer = torch.optim.SGD(
        params.values(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _LRFactor(config.schedule, config.epochs, steps_per_epoch)
    )
    inner = minimax.PGD(config.steps, config.step_size, restarts=config.restarts, seed=config.seed)
    rule = make_rule(config.rule)
    opt = minimax.MinMaxOptimizer(problem, optimizer, inner, rule, remeasure=config.remeasure)
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    augment_gen = torch.Generator().manual_seed(config.seed + 1)
    augment = (augment_fn or default_augment) if config.augment else None

    history = RunHistory(config, [], out, "completed", meta)
    epoch, global_step, wall, best_acc = 0, 0, 0.0, -math.inf
    position: dict[str, Any] | None = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["minmax"])
        scheduler.load_state_dict(state["scheduler"])
        shuffle_gen.set_state(state["rng"]["shuffle"])
        augment_gen.set_state(state["rng"]["augment"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        problem.passes.forward, problem.passes.backward = state["passes"]
        epoch, global_step, wall = state["epoch"], state["step"], state["wall"]
        best_acc = state["best_acc"] if state["best_acc"] is not None else -math.inf
        history.epochs = list(state["history"])
        position = state["position"]
        _truncate_jsonl(metrics_path, state["metrics_lines"])
    metrics_lines = _count_lines(metrics_path)

    def checkpoint(pos: dict[str, Any] | None) -> None:
        atomic_save(
            {
                "model": model.state_dict(),
                "minmax": opt.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "step": global_step,
                "position": pos,
                "wall": wall,
                "passes": list(problem.passes.snapshot()),
                "best_acc": None if best_acc == -math.inf else best_acc,
                "rng": {
                    "shuffle": shuffle_gen.get_state(),
                    "augment": augment_gen.get_state(),
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
                "history": history.epochs,
                "metrics_lines": metrics_lines,
                "config": config.to_dict(),
                "meta": meta,
            },
            ckpt_path,
        )

    if epoch >= config.epochs:
        return history

    with _Signals() as signals, open(metrics_path, "a") as metrics:

        def log(record: dict[str, Any]) -> None:
            nonlocal metrics_lines
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            metrics_lines += 1

        while epoch < config.epochs:
            if position is None:
                perm = torch.randperm(n, generator=shuffle_gen)
                index, stats = 0, _EpochStats()
            else:
                perm, index = position["perm"], position["index"]
                stats = _EpochStats(**position["stats"])
                position = None
            model.train()
            bar = tqdm(
                total=steps_per_epoch, initial=stats.steps, disable=not progress, leave=False,
                desc=f"epoch {epoch + 1}/{config.epochs}", dynamic_ncols=True,
            )  # fmt: skip
            with bar:
                while index < n:
                    t0 = time.perf_counter()
                    idx = perm[index : index + config.batch_size]
                    x = _to_float(images[idx])
                    y = labels[idx]
                    if augment is not None:
                        x = augment(x, augment_gen)
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    if amp and x.ndim == 4:
                        x = x.contiguous(memory_format=torch.channels_last)
                    prep = time.perf_counter() - t0
                    correct = _batch_correct(model, x, y, amp)
                    with _autocast(device, amp):
                        report = opt.step((x, y))
                    scheduler.step()
                    step_wall = prep + report.seconds
                    wall += step_wall
                    index += len(idx)
                    global_step += 1
                    entropy = weights_entropy(report.weights)
                    stats.steps += 1
                    stats.examples += len(idx)
                    stats.loss += report.robust_loss * len(idx)
                    stats.correct += correct
                    stats.norm += report.norm
                    stats.entropy += entropy
                    stats.wall += step_wall
                    if report.certificate is not None:
                        stats.certificate += report.certificate
                        stats.certificates += 1
                    if report.robust_loss_after is not None:
                        stats.remeasured += 1
                        stats.went_up += int(report.robust_loss_after > report.robust_loss)
                    record = {
                        "kind": "step",
                        "epoch": epoch + 1,
                        "step": global_step,
                        "robust_loss": report.robust_loss,
                        "robust_loss_after": report.robust_loss_after,
                        "norm": report.norm,
                        "certificate": report.certificate,
                        "weights_entropy": entropy,
                        "batch_clean_acc": correct / len(idx),
                        "seconds": step_wall,
                        "lr": _used_lr(scheduler),
                    }
                    log(record)
                    if callback is not None:
                        callback(record)
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{stats.loss / stats.examples:.3f}",
                        acc=f"{stats.correct / stats.examples:.3f}",
                        norm=f"{report.norm:.3g}",
                        val=_fmt_acc(history.last("robust_acc")),
                    )
                    stop = signals.received is not None or (
                        max_steps is not None and global_step >= max_steps
                    )
                    if stop:
                        pos = {"perm": perm, "index": index, "stats": dataclasses.asdict(stats)}
                        checkpoint(pos)
                        history.status = "interrupted" if signals.received else "max_steps"
                        return history

            # -- end of epoch: evaluate, record, checkpoint --------------------------------------
            epoch += 1
            clean_acc = robust_acc = None
            eval_seconds = 0.0
            if val_set is not None and (epoch % config.eval_every == 0 or epoch == config.epochs):
                t0 = time.perf_counter()
                result = _validate(model, val_set, config)
                eval_seconds = time.perf_counter() - t0
                clean_acc = result["clean_acc"]
                robust_acc = result["robust_acc"][f"pgd{config.eval_steps}"]
            fwd, bwd = problem.passes.snapshot()
            record = {
                "epoch": epoch,
                "clean_acc": clean_acc,
                "robust_acc": robust_acc,
                "train_loss": _mean(stats.loss, stats.examples),
                "train_clean_acc": _mean(stats.correct, stats.examples),
                "went_up_fraction": _mean(stats.went_up, stats.remeasured),
                "mean_norm": _mean(stats.norm, stats.steps),
                "mean_certificate": _mean(stats.certificate, stats.certificates),
                "mean_weights_entropy": _mean(stats.entropy, stats.steps),
                "lr": _used_lr(scheduler),
                "wall": wall,
                "eval_seconds": eval_seconds,
                "images_per_second": stats.examples / stats.wall if stats.wall > 0 else None,
                "forward": fwd,
                "backward": bwd,
                "steps": global_step,
                "examples": _examples_seen(history.epochs, stats.examples),
            }
            history.epochs.append(record)
            log({"kind": "epoch", **record})
            if progress:
                tqdm.write(_epoch_line(record, config.epochs))
            if robust_acc is not None and robust_acc > best_acc:
                best_acc = robust_acc
                atomic_save(
                    {"model": model.state_dict(), "epoch": epoch, "robust_acc": robust_acc,
                     "clean_acc": clean_acc, "config": config.to_dict(), "meta": meta},
                    out / "best.pt",
                )  # fmt: skip
            checkpoint(None)
            if signals.received is not None:
                history.status = "interrupted"
                return history
    return history


def _used_lr(scheduler: torch.optim.lr_scheduler.LRScheduler) -> float:
    """The learning rate the last step used (the scheduler has already moved on by one)."""
    factor = scheduler.lr_lambdas[0]  # type: ignore[attr-defined]
    base = scheduler.base_lrs[0]
    return float(base * factor(max(scheduler.last_epoch - 1, 0)))


def _examples_seen(epochs: list[dict[str, Any]], this_epoch: int) -> int:
    return (epochs[-1]["examples"] if epochs else 0) + this_epoch


def _fmt_acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _epoch_line(record: Mapping[str, Any], epochs: int) -> str:
    return (
        f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.4f}  "
        f"clean {_fmt_acc(record['clean_acc'])}  robust {_fmt_acc(record['robust_acc'])}  "
        f"|d| {record['mean_norm']:.4g}  wall {record['wall']:.1f}s"
    )


@contextlib.contextmanager
def _autocast(device: torch.device, amp: bool) -> Iterator[None]:
    if not amp:
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


def _batch_correct(model: nn.Module, x: Tensor, y: Tensor, amp: bool) -> int:
    """Clean accuracy count of the batch before the step (eval mode, running statistics)."""
    model.eval()
    try:
        with torch.no_grad(), _autocast(x.device, amp):
            return int((model(x).argmax(-1) == y).sum())
    finally:
        model.train()


def _validate(model: nn.Module, val_set: tuple[Tensor, Tensor], config: TrainConfig) -> dict:
    from problems.evaluation import evaluate

    return evaluate(
        model, val_set, eps=config.eps, attacks=("clean", f"pgd{config.eval_steps}"),
        restarts=config.eval_restarts, batch_size=max(256, config.batch_size), seed=config.seed,
        device=config.device, norm=config.norm,
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


def _count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _truncate_jsonl(path: Path, lines: int) -> None:
    """Keep the first ``lines`` lines (those written before the checkpoint), atomically."""
    if not path.is_file():
        if lines:
            raise FileNotFoundError(f"{path} is missing but the checkpoint expects {lines} lines")
        return
    with open(path, "rb") as f:
        kept = [line for _, line in zip(range(lines), f)]
    if len(kept) < lines:
        raise ValueError(f"{path} has {len(kept)} lines but the checkpoint expects {lines}")
    _atomic_write_text(path, b"".join(kept).decode())
