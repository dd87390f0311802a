"""``minimax train``: adversarial training of an image classifier (CIFAR-10 by default; each
data set may have its own recipe, `DATASET_DEFAULTS`).

``add_arguments(parser)`` declares the options (choices come from the registries: data sets,
models, rules, threats); ``run(args)`` trains and prints the last epoch's record as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from problems.cli.types import (
    MAX_STEPS,
    PROG,
    UsageError,
    add_threads_argument,
    attack_steps,
    bounded_int,
    check_radius,
    load_data,
    nonnegative_int,
    nonnegative_number,
    path,
    positive_int,
    radius,
    random_seed,
    rank_options,
    resolve_device,
    restarts,
    set_threads,
    timeout,
    unit_interval,
)
from problems.data.datasets import DATASETS
from problems.data.splits import train_val_split
from problems.models import ACTIVATIONS, MODELS, NORMALIZATIONS, build_model
from problems.threats import THREATS
from problems.training import BATCHNORM, RULES, SCHEDULES, TrainConfig, train
from problems.training.rules import training_rules

__all__ = ["DATASET_DEFAULTS", "DESCRIPTION", "EPILOG", "HELP", "add_arguments", "run"]

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

#: ``--paper``: the DDi paper's setting (Latorre et al. 2023; docs/cifar10.md, "The recipe and its
#: sources"); every other option keeps its default, and explicit options win
PAPER: dict[str, Any] = {
    "model": "resnet18",
    "activation": "celu",
    "normalization": "group",
    "rule": "ddi",
    "restarts": 10,
    "steps": 7,
    "eval_steps": 20,
}


#: per data set, the defaults that replace CIFAR-10's (explicit options and --paper win): the 8×8
#: digits train well with the demo's recipe (small CNN, ε = 0.1, constant lr, no crop / flip,
#: which would turn a 6 into a 9)
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {
        "model": "small_cnn",
        "epochs": 10,
        "batch_size": 64,
        "lr": 0.05,
        "schedule": "constant",
        "eps": 0.1,
        "step_size": 0.05,
        "steps": 5,
        "eval_steps": 10,
        "no_augment": True,
    }
}


def _choices_help(registry: Any, names: list[str] | None = None) -> str:
    listed = registry.names() if names is None else names
    return "; ".join(f"{name}: {registry.help(name)}" for name in listed)


def _aliases_help() -> str:
    aliases = [a for a in training_rules(aliases=True) if a not in RULES.names()]
    return "".join(f"; {a}: the same as {RULES.canonical(a)}" for a in aliases)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``minimax train``, in groups: data, model, training, validation, run."""
    _data_arguments(parser.add_argument_group("data"))
    _model_arguments(parser.add_argument_group("model"))
    _training_arguments(parser.add_argument_group("training"))
    ev = parser.add_argument_group("validation")
    ev.add_argument(
        "--eval-steps",
        type=bounded_int(1, MAX_STEPS, "AutoAttack's APGD takes 100"),
        default=20,
        help="PGD steps of the validation attack (step 2.5·eps/steps)",
    )
    ev.add_argument(
        "--eval-restarts", type=restarts, default=1, help="restarts of the validation attack"
    )
    ev.add_argument(
        "--eval-every",
        type=positive_int,
        default=1,
        metavar="EPOCHS",
        help="validate every EPOCHS epochs (and after the last)",
    )
    _run_arguments(parser.add_argument_group("run"))
    for action in parser._actions:  # each option's help names the data sets' own defaults
        for dataset, defaults in DATASET_DEFAULTS.items():
            if action.dest in defaults and action.help is not None:
                value = defaults[action.dest]
                action.help += f" [{dataset}: {value}]" if action.nargs != 0 else f" [{dataset}]"


def _data_arguments(data: Any) -> None:
    data.add_argument(
        "--dataset", choices=DATASETS.names(), default="cifar10", help=_choices_help(DATASETS)
    )
    data.add_argument(
        "--data-dir",
        type=path,
        default=Path("data"),
        help="directory with (or for) the data set's files",
    )
    data.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    data.add_argument(
        "--val-split",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="training images held out for validation (default: 1000, at most a "
        "tenth of the set; 0 validates on the test set)",
    )
    data.add_argument(
        "--limit-train",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on the first N training images only",
    )
    data.add_argument(
        "--limit-test",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate each epoch on at most N validation images",
    )
    data.add_argument(
        "--no-augment", action="store_true", help="no random crop / flip augmentation"
    )


def _model_arguments(model: Any) -> None:
    model.add_argument(
        "--model", choices=MODELS.names(), default="resnet18", help="the architecture"
    )
    model.add_argument(
        "--activation", choices=ACTIVATIONS, default="relu", help="the activation function"
    )
    model.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default="batch",
        help="normalization layers (batch, group, none)",
    )
    model.add_argument(
        "--batchnorm",
        choices=BATCHNORM,
        default="per_restart",
        help="BatchNorm during the attack and gradients",
    )
    model.add_argument(
        "--paper",
        action="store_true",
        help="the DDi paper's setting: "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in PAPER.items())
        + " (explicit options override it)",
    )


def _training_arguments(rule: Any) -> None:
    rule.add_argument(
        "--rule",
        choices=training_rules(aliases=True),
        default="danskin",
        help=_choices_help(RULES, training_rules()) + _aliases_help(),
    )
    rule.add_argument(
        "--restarts",
        "-m",
        type=restarts,
        default=1,
        help="PGD restarts m of the training attack",
    )
    rule.add_argument("--epochs", type=positive_int, default=200, help="training epochs")
    rule.add_argument("--batch-size", type=positive_int, default=128, help="examples per step")
    rule.add_argument(
        "--lr", type=nonnegative_number, default=0.1, help="the (initial) learning rate of SGD"
    )
    rule.add_argument("--momentum", type=unit_interval, default=0.9, help="SGD momentum, in [0, 1)")
    rule.add_argument(
        "--weight-decay", type=unit_interval, default=5e-4, help="SGD weight decay, in [0, 1)"
    )
    rule.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="piecewise",
        help="piecewise (÷10 at 50%% and 75%%), cosine, constant",
    )
    rule.add_argument(
        "--eps",
        type=radius,
        default="8/255",
        help="radius of the perturbation ball (fractions accepted)",
    )
    rule.add_argument(
        "--allow-large-eps",
        action="store_true",
        help="accept an L∞ --eps or --step-size over 1 (the whole pixel range)",
    )
    rule.add_argument("--step-size", type=radius, default="2/255", help="PGD step size")
    rule.add_argument(
        "--steps", type=attack_steps, default=10, help="PGD steps of the training attack"
    )
    rule.add_argument(
        "--threat", choices=THREATS.names(), default="linf", help="the perturbation ball"
    )
    rule.add_argument(
        "--remeasure",
        action="store_true",
        help="re-run the attack after each step: fraction of steps that went up",
    )


def _run_arguments(run: Any) -> None:
    run.add_argument("--out", type=path, required=True, help="the run directory")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from --out/checkpoint.pt (a run stopped before its first "
        "checkpoint starts afresh; the settings must be the saved ones)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an existing --out (deletes its checkpoints and metrics)",
    )
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto")
    run.add_argument("--amp", action="store_true", help="bf16 autocast + channels_last (CUDA)")
    add_threads_argument(run)
    run.add_argument(
        "--seed", type=random_seed, default=0, help="seeds the model, data order and attack"
    )
    run.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop (with a checkpoint) after N steps in all",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--dist-batchnorm",
        choices=("local", "sync"),
        default="local",
        help="under torchrun: BatchNorm running statistics per rank (local) or "
        "averaged over ranks after each step (sync); see docs/distributed.md",
    )
    run.add_argument(
        "--dist-timeout",
        type=timeout,
        default=300.0,
        metavar="SECONDS",
        help="under torchrun: a collective waiting longer than this fails (300)",
    )


def finish_args(args: argparse.Namespace, given: set[str]) -> None:
    """Apply the data set's own defaults (`DATASET_DEFAULTS`), then ``--paper``, to the options
    not ``given`` explicitly; check the radii (an L∞ radius over 1 needs --allow-large-eps)."""
    for name, value in DATASET_DEFAULTS.get(args.dataset, {}).items():
        if name not in given:
            setattr(args, name, value)
    if args.paper:
        for name, value in PAPER.items():
            if name not in given:
                setattr(args, name, value)
    for flag, value in (("--eps", args.eps), ("--step-size", args.step_size)):
        check_radius(flag, value, args.threat, args.allow_large_eps)


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
    from problems.distributed import CollectiveError, Ranks

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
        return _run(args, ranks)
    except CollectiveError as error:
        print(f"{PROG} train: {error}", file=sys.stderr)
        return 1
    finally:
        ranks.close()


def _run(args: argparse.Namespace, ranks: Any) -> int:
    import torch

    from problems.distributed import RankMismatchError

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
    (x, y), (xt, yt) = data.train, data.test
    val_split = args.val_split if args.val_split is not None else min(1000, x.shape[0] // 10)
    if val_split >= x.shape[0]:
        raise UsageError(f"--val-split {val_split} leaves no training images (of {x.shape[0]})")
    if val_split:
        x, y, xv, yv = train_val_split(x, y, val_split, seed=args.seed)
    else:
        xv, yv = xt, yt  # validate on the test set (as Rice et al. do)
    if args.limit_train:
        x, y = x[: args.limit_train], y[: args.limit_train]
    spec: dict[str, Any] = {
        "name": args.model,
        "activation": args.activation,
        "normalization": args.normalization,
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "image_size": data.image_size,
    }
    torch.manual_seed(args.seed)
    model = build_model(**spec)
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
