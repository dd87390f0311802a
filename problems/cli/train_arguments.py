"""The options of ``minimax train`` (choices from the registries: data sets, models, rules,
threats), its presets (``--paper``, each data set's own recipe) and the checks across options.

Public API::

    add_arguments(parser)      the options in groups: data, model, training, validation, run
    finish_args(args, given)   the presets applied to the options not given; radii checked
    PAPER                      ``--paper``: the DDi paper's setting
    DATASET_DEFAULTS           per data set, the defaults that replace CIFAR-10's
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data.datasets import DATASETS
from ..models import ACTIVATIONS, MODELS, NORMALIZATIONS
from ..threats import THREATS
from ..training import BATCHNORM, RULES, SCHEDULES
from ..training.rules import training_rules
from .types import (
    MAX_STEPS,
    add_threads_argument,
    attack_steps,
    bounded_int,
    check_radius,
    nonnegative_int,
    nonnegative_number,
    path,
    positive_int,
    radius,
    random_seed,
    restarts,
    timeout,
    unit_interval,
)

__all__ = ["DATASET_DEFAULTS", "PAPER", "add_arguments", "finish_args"]


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
