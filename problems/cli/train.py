"""``minimax train``: adversarial training of an image classifier (CIFAR-10 by default; each
data set may have its own recipe, `problems.cli.train_arguments.DATASET_DEFAULTS`).

``add_arguments(parser)`` declares the options and ``finish_args(args, given)`` applies the
presets (both from `problems.cli.train_arguments`); ``run(args)`` trains and prints the last
epoch's record as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..data.splits import train_val_split
from ..models import build_model
from ..training import RULES, TrainConfig, train
from .train_arguments import add_arguments, finish_args
from .types import (
    PROG,
    UsageError,
    load_data,
    model_spec,
    rank_options,
    resolve_device,
    set_threads,
)

__all__ = ["DESCRIPTION", "EPILOG", "HELP", "add_arguments", "finish_args", "run"]

HELP = "adversarially train an image classifier (CIFAR-10, its synthetic stand-in, digits)"
DESCRIPTION = textwrap.dedent(
    """\
    Adversarial training of an image classifier with PGD-AT (danskin), MaxLoss or DDi, on
    CIFAR-10, its synthetic stand-in, or scikit-learn's 8x8 digits (offline).
    The defaults shown are CIFAR-10's recipe (Rice et al. 2020). --dataset digits has its own
    (the demo's): --model small_cnn --epochs 10 --batch-size 64 --lr 0.05 --schedule constant
    --eps 0.1 --step-size 0.05 --steps 5 --eval-steps 10 --no-augment; it trains to about 0.98
    clean and 0.85 robust (PGD-10) validation accuracy in well under a minute on one CPU thread.
    Explicit options override either recipe."""
)
EPILOG = textwrap.dedent(
    """\
    examples:
      # PGD adversarial training (Rice et al. 2020 recipe), PreActResNet-18
      minimax train --dataset cifar10 --data-dir data --download \\
          --model preact_resnet18 --rule danskin --epochs 200 --out runs/pgd-at
      # the DDi paper's setup (ResNet-18, CELU, GroupNorm, DDi, m = 10, PGD-7 train, PGD-20
      # validation); explicit options still override the preset, e.g. --epochs 100
      minimax train --data-dir data --paper --out runs/ddi --device cuda
      # a smoke test in seconds on CPU (writes a tiny synthetic CIFAR-format archive)
      minimax train --dataset synthetic --data-dir /tmp/synth --model small_cnn \\
          --epochs 1 --steps 2 --limit-train 64 --out /tmp/runs/smoke
      # scikit-learn's 8x8 digits with their own recipe (offline; seconds on a CPU)
      minimax train --dataset digits --out runs/digits
      # continue an interrupted run (Ctrl-C / SIGTERM write a checkpoint first); a run stopped
      # before its first checkpoint starts afresh; --overwrite starts over
      minimax train ... --out runs/ddi --resume
    exit status: 0 done, 2 a usage error, 3 the run diverged (NaN / Inf: the last good
    checkpoint is kept, the reason is in metrics.jsonl), 130 interrupted (checkpoint written)
    """
)


def _config(args: argparse.Namespace, device: str) -> TrainConfig:
    """The `TrainConfig` of ``args`` (it validates itself: an invalid one is a UsageError)."""
    try:
        return TrainConfig(
            rule=RULES.canonical(args.rule),  # an alias resumes its rule's runs
            restarts=args.restarts,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            schedule=args.schedule,
            eps=args.eps,
            step_size=args.step_size,
            steps=args.steps,
            threat=args.threat,
            eval_steps=args.eval_steps,
            eval_restarts=args.eval_restarts,
            eval_every=args.eval_every,
            eval_examples=args.limit_test,
            augment=not args.no_augment,
            remeasure=args.remeasure,
            seed=args.seed,
            device=device,
            amp=args.amp,
            batchnorm=args.batchnorm,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say; print the last epoch's record; 130 when interrupted. Under
    torchrun every rank runs this; rank 0 writes and prints."""
    from ..distributed import CollectiveError, Ranks

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file: the run directory must be a directory")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other: pass one of them")
    ranks = Ranks.from_env(args.dist_timeout, args.dist_batchnorm)  # one process: no-op
    if args.resume and not (Path(args.out) / "checkpoint.pt").is_file() and not args.no_progress:
        if ranks.is_main:
            print(
                f"{PROG} train: no checkpoint in {args.out} yet: starting afresh there",
                file=sys.stderr,
            )
    try:
        with ranks:  # leaves the process group
            return _run(args, ranks)
    except CollectiveError as error:
        print(f"{PROG} train: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, ranks: Any) -> int:
    from ..distributed import RankMismatchError

    try:  # under torchrun: the whole configuration, compared across ranks in one collective
        ranks.agree(rank_options(args), f"{PROG} train")
    except RankMismatchError as error:
        raise UsageError(str(error)) from None

    config = _config(args, ranks.device(resolve_device(args.device)))
    threads = set_threads(args.threads)
    progress = not args.no_progress and ranks.is_main
    data = ranks.first_on_main(
        lambda: load_data(
            args.dataset,
            args.data_dir,
            download=args.download,
            progress=progress,
            seed=args.seed,
        )
    )
    (x, y), (xv, yv), val_split = _splits(args, data)
    model, spec = _model(args, data)
    meta = {
        "model": spec,
        "dataset": args.dataset,
        "data_dir": str(args.data_dir.resolve()),
        "val_split": val_split,
        "limit_train": args.limit_train,
    }
    if progress:
        print(
            f"training {args.model} ({sum(p.numel() for p in model.parameters()):,} parameters)"
            f" on {x.shape[0]} images, validating on {xv.shape[0]}; rule {config.rule}, "
            f"m={config.restarts}, device {config.device}, {threads} CPU thread(s) -> {args.out}",
            file=sys.stderr,
        )
    try:
        history = train(
            model,
            (x, y),
            (xv, yv),
            config,
            args.out,
            resume=args.resume,
            progress=progress,
            max_steps=args.max_steps,
            meta=meta,
            overwrite=args.overwrite,
            ranks=ranks,
        )
    except (FileExistsError, ValueError) as error:
        raise UsageError(str(error)) from None
    return _status(args, history, ranks)


def _splits(args: argparse.Namespace, data: Any) -> tuple[Any, Any, int]:
    """(training images, labels), (validation images, labels) and the validation split's size
    (0: validate on the test set, as Rice et al. do)."""
    (x, y), (xt, yt) = data.train, data.test
    val_split = args.val_split if args.val_split is not None else min(1000, x.shape[0] // 10)
    if val_split >= x.shape[0]:
        raise UsageError(f"--val-split {val_split} leaves no training images (of {x.shape[0]})")
    if val_split:
        x, y, xv, yv = train_val_split(x, y, val_split, seed=args.seed)
    else:
        xv, yv = xt, yt
    if args.limit_train:
        x, y = x[: args.limit_train], y[: args.limit_train]
    return (x, y), (xv, yv), val_split


def _model(args: argparse.Namespace, data: Any) -> tuple[Any, dict[str, Any]]:
    """The model of ``args`` for ``data``, initialised from ``--seed``, and its description."""
    import torch

    spec = model_spec(args, data)
    torch.manual_seed(args.seed)
    return build_model(**spec), spec


def _status(args: argparse.Namespace, history: Any, ranks: Any) -> int:
    """Print the last epoch's record (rank 0) and say how the run ended: the exit status."""
    last = history.epochs[-1] if history.epochs else {}
    if not ranks.is_main:
        return 130 if history.status == "interrupted" else 0
    print(json.dumps({"status": history.status, "out": str(args.out), **last}))
    if history.status == "diverged":
        print(f"{PROG} train: error: the run diverged: {history.reason}", file=sys.stderr)
        return 3
    if history.status == "interrupted":
        print(
            f"{PROG} train: interrupted; checkpoint written. Continue with --resume.",
            file=sys.stderr,
        )
        return 130
    return 0
