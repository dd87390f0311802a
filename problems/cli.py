"""The ``minimax`` command line: ``train``, ``evaluate``, ``compare`` and ``demo``.

``main(argv=None) -> int`` is the console-script entry point; bad arguments exit with status 2
and a one-line message (no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

PROG = "minimax"


class UsageError(Exception):
    """A bad argument found after parsing (exit status 2)."""


# ------------------------------------------------------------------------------------------------
# argument types


def number(text: str) -> float:
    """A float, or a fraction such as ``8/255``."""
    try:
        value = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (use e.g. 0.031 or 8/255)"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def nonnegative_number(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 0")
    return value


def positive_number(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be ≥ {low}")
        return value

    parse.__name__ = f"integer ≥ {low}"
    return parse


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


# ------------------------------------------------------------------------------------------------
# parser


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


TRAIN_EPILOG = textwrap.dedent(
    """\
    examples:
      # PGD adversarial training (Rice et al. 2020 recipe), PreActResNet-18
      minimax train --dataset cifar10 --data-dir data --download \\
          --model preact_resnet18 --rule danskin --epochs 200 --out runs/pgd-at
      # the DDi paper's setup: ResNet-18 with CELU + GroupNorm, m = 10 restarts, PGD-7
      minimax train --data-dir data --model resnet18 --activation celu --norm group \\
          --rule ddi --restarts 10 --steps 7 --out runs/ddi --device cuda
      # a smoke test in seconds on CPU (writes a tiny synthetic CIFAR-format archive)
      minimax train --dataset synthetic --data-dir /tmp/synth --model small_cnn \\
          --epochs 1 --steps 2 --limit-train 64 --out /tmp/runs/smoke
      # continue an interrupted run (Ctrl-C / SIGTERM write a checkpoint first)
      minimax train ... --out runs/ddi --resume
    """
)

EVALUATE_EPILOG = textwrap.dedent(
    """\
    examples:
      minimax evaluate runs/ddi/best.pt --data-dir data
      minimax evaluate runs/ddi --attacks clean,pgd20,apgd-ce,apgd-dlr --limit 1000 \\
          --out runs/ddi/eval.json
    attacks: clean, fgsm, pgdK (K steps of 2.5·eps/K, e.g. pgd20), apgd-ce, apgd-dlr
    (100 steps; apgd-ce50 sets the steps). A run directory means its best.pt (else
    checkpoint.pt).
    """
)

COMPARE_EPILOG = textwrap.dedent(
    """\
    examples:
      minimax compare runs/pgd-at runs/maxloss runs/ddi --out reports/cifar10
      minimax compare runs/a runs/b --names PGD-AT,DDi --out reports/ab
    writes robust / clean accuracy against epoch and against wall-clock, the loss curves
    (PNG) and report.html into --out.
    """
)

DEMO_EPILOG = "The offline digits demo; see `minimax demo --help` for its options."


def _add_train(sub: Any) -> None:
    from problems.models import ACTIVATIONS, MODELS, NORMS
    from problems.training import BATCHNORM, RULES, SCHEDULES

    p = sub.add_parser(
        "train", help="adversarially train a CIFAR-10 classifier", formatter_class=_formatter,
        description="Adversarial training on CIFAR-10 with PGD-AT, MaxLoss or DDi.",
        epilog=TRAIN_EPILOG,
    )  # fmt: skip
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=("cifar10", "synthetic"), default="cifar10",
                      help="cifar10, or synthetic: a tiny generated CIFAR-format archive")
    data.add_argument("--data-dir", type=Path, default=Path("data"),
                      help="directory with (or for) the CIFAR-10 archive (default: data)")
    data.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    data.add_argument("--val-split", type=nonnegative_int, default=None, metavar="N",
                      help="training images held out for validation (default: 1000, at most a "
                           "tenth of the set; 0 validates on the test set)")
    data.add_argument("--limit-train", type=positive_int, default=None, metavar="N",
                      help="train on the first N training images only")
    data.add_argument("--limit-test", type=positive_int, default=None, metavar="N",
                      help="evaluate each epoch on at most N validation images")
    data.add_argument("--no-augment", action="store_true",
                      help="no random crop / flip augmentation")
    model = p.add_argument_group("model")
    model.add_argument("--model", choices=MODELS, default="resnet18")
    model.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    model.add_argument("--norm", choices=NORMS, default="batch",
                       help="normalization layers (batch, group, none)")
    model.add_argument("--batchnorm", choices=BATCHNORM, default="per_restart",
                       help="BatchNorm during the attack and gradients (default: per_restart)")
    rule = p.add_argument_group("training")
    rule.add_argument("--rule", choices=RULES, default="danskin",
                      help="danskin (PGD-AT), maxloss, ddi, ddi-example (default: danskin)")
    rule.add_argument("--restarts", "-m", type=positive_int, default=1,
                      help="PGD restarts m of the training attack (default: 1)")
    rule.add_argument("--epochs", type=positive_int, default=200)
    rule.add_argument("--batch-size", type=positive_int, default=128)
    rule.add_argument("--lr", type=nonnegative_number, default=0.1)
    rule.add_argument("--momentum", type=nonnegative_number, default=0.9)
    rule.add_argument("--weight-decay", type=nonnegative_number, default=5e-4)
    rule.add_argument("--schedule", choices=SCHEDULES, default="piecewise",
                      help="piecewise (÷10 at 50%% and 75%%), cosine, constant")
    rule.add_argument("--eps", type=nonnegative_number, default=8 / 255,
                      help="radius (default 8/255; fractions accepted)")
    rule.add_argument("--step-size", type=nonnegative_number, default=2 / 255,
                      help="PGD step size (default 2/255)")
    rule.add_argument("--steps", type=nonnegative_int, default=10,
                      help="PGD steps of the training attack (default 10)")
    rule.add_argument("--threat", choices=("linf", "l2"), default="linf",
                      help="the perturbation ball (default linf)")
    rule.add_argument("--remeasure", action="store_true",
                      help="re-run the attack after each step: fraction of steps that went up")
    ev = p.add_argument_group("validation")
    ev.add_argument("--eval-steps", type=nonnegative_int, default=20)
    ev.add_argument("--eval-restarts", type=positive_int, default=1)
    ev.add_argument("--eval-every", type=positive_int, default=1, metavar="EPOCHS")
    run = p.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="the run directory")
    run.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    run.add_argument("--overwrite", action="store_true", help="start over in an existing --out")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (default)")
    run.add_argument("--amp", action="store_true", help="bf16 autocast + channels_last (CUDA)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--max-steps", type=positive_int, default=None, metavar="N",
                     help="stop (with a checkpoint) after N steps in all")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="robust accuracy of a checkpoint on the test set",
        formatter_class=_formatter, epilog=EVALUATE_EPILOG,
        description="Clean and robust accuracy (PGD, APGD-CE, APGD-DLR) of a trained model.",
    )  # fmt: skip
    p.add_argument("checkpoint", type=Path, help="best.pt, checkpoint.pt, or a run directory")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the CIFAR-10 directory (default: the one the run was trained on)")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--attacks", default="clean,pgd20,pgd50,apgd-ce,apgd-dlr",
                   help="comma-separated (default: clean,pgd20,pgd50,apgd-ce,apgd-dlr)")
    p.add_argument("--restarts", type=positive_int, default=1)
    p.add_argument("--eps", type=nonnegative_number, default=None,
                   help="radius (default: the training eps)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="the first N images only")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default: eval-<checkpoint>.json in the run directory)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def _add_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="plot and tabulate several runs", formatter_class=_formatter,
        epilog=COMPARE_EPILOG, description="Compare training runs: PNG plots and report.html.",
    )  # fmt: skip
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--names", default=None, help="comma-separated labels, one per run")
    p.set_defaults(func=cmd_compare)


def _add_demo(sub: Any, load: bool) -> None:
    kwargs = dict(help="the offline digits demo (PGD-AT vs MaxLoss vs DDi)",
                  formatter_class=_formatter)  # fmt: skip
    if not load:
        p = sub.add_parser("demo", add_help=False, **kwargs)
        p.set_defaults(func=None)
        return
    try:
        from problems import demo
    except ImportError as error:
        p = sub.add_parser("demo", **kwargs)
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_demo_missing(error))
        return
    p = sub.add_parser("demo", epilog=getattr(demo, "EPILOG", DEMO_EPILOG), **kwargs)
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)


def _demo_missing(error: ImportError) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(
            f"{PROG} demo: error: the demo is not available in this installation "
            f"(problems.demo could not be imported: {error})",
            file=sys.stderr,
        )
        return 1

    return run


def build_parser(*, demo: bool = False) -> argparse.ArgumentParser:
    """The full parser; ``demo=True`` imports `problems.demo` to add its options."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_formatter,
        description="minimax: min-max solvers and Danskin's Descent Direction (DDi) for "
                    "adversarial training.",
        epilog="Run `minimax COMMAND --help` for a command's options and examples.",
    )  # fmt: skip
    from minimax import __version__

    parser.add_argument("--version", action="version", version=f"minimax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_evaluate(sub)
    _add_compare(sub)
    _add_demo(sub, demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run the command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(demo=command == "demo")
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exit:  # --help, --version, argparse errors (status 2)
        return int(exit.code or 0) if not isinstance(exit.code, str) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


# ------------------------------------------------------------------------------------------------
# commands


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"--device must be cpu, cuda, cuda:N or auto, got {name!r}")
    return name


def _load_data(dataset: str, data_dir: Path, download: bool, progress: bool) -> tuple[Any, ...]:
    """(train images, train labels, test images, test labels) as uint8 / int64 tensors."""
    from problems import cifar10

    md5 = None
    if dataset == "synthetic":
        has_data = any(
            (data_dir / name).exists()
            for name in (*cifar10.ARCHIVES.values(), *cifar10.DIRECTORIES.values())
        )
        if not has_data:
            cifar10.write_synthetic_cifar10(data_dir, n_train_per_batch=40, n_test=100)
        archive = data_dir / cifar10.ARCHIVES["python"]
        md5 = cifar10.md5sum(archive) if archive.is_file() else None
        download = False
    elif not data_dir.is_dir() and not download:
        raise UsageError(
            f"data directory {data_dir} does not exist: pass --download to fetch CIFAR-10 "
            "into it, or point --data-dir at a directory holding cifar-10-python.tar.gz"
        )
    try:
        kwargs = dict(download=download, md5=md5, progress=progress)
        x, y, _ = cifar10.load_cifar10(data_dir, train=True, **kwargs)  # type: ignore[arg-type]
        xt, yt, _ = cifar10.load_cifar10(data_dir, train=False, **kwargs)  # type: ignore[arg-type]
    except cifar10.CIFAR10Error as error:
        raise UsageError(str(error)) from None
    return x, y, xt, yt


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from problems import cifar10
    from problems.models import build_model
    from problems.training import TrainConfig, train

    if args.resume and not (Path(args.out) / "checkpoint.pt").is_file():
        raise UsageError(
            f"--resume: no checkpoint in {args.out} (expected {Path(args.out) / 'checkpoint.pt'}); "
            "check --out, or drop --resume to start a new run"
        )
    device = _device(args.device)
    progress = not args.no_progress
    config = TrainConfig(
        rule=args.rule, restarts=args.restarts, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
        schedule=args.schedule, eps=args.eps, step_size=args.step_size, steps=args.steps,
        norm=args.threat, eval_steps=args.eval_steps, eval_restarts=args.eval_restarts,
        eval_every=args.eval_every, eval_examples=args.limit_test, augment=not args.no_augment,
        remeasure=args.remeasure, seed=args.seed, device=device, amp=args.amp,
        batchnorm=args.batchnorm,
    )  # fmt: skip
    try:
        config.validate()
    except ValueError as error:
        raise UsageError(str(error)) from None
    x, y, xt, yt = _load_data(args.dataset, args.data_dir, args.download, progress)
    val_split = args.val_split if args.val_split is not None else min(1000, x.shape[0] // 10)
    if val_split >= x.shape[0]:
        raise UsageError(f"--val-split {val_split} leaves no training images (of {x.shape[0]})")
    if val_split:
        x, y, xv, yv = cifar10.train_val_split(x, y, val_split, seed=args.seed)
    else:
        xv, yv = xt, yt  # validate on the test set (as Rice et al. do)
    if args.limit_train:
        x, y = x[: args.limit_train], y[: args.limit_train]
    spec: dict[str, Any] = {"name": args.model, "activation": args.activation,
                            "norm": args.norm, "num_classes": 10, "in_channels": 3,
                            "image_size": 32}  # fmt: skip
    torch.manual_seed(args.seed)
    model = build_model(**spec)
    meta = {"model": spec, "dataset": args.dataset, "data_dir": str(args.data_dir.resolve()),
            "val_split": val_split, "limit_train": args.limit_train}  # fmt: skip
    if progress:
        print(f"training {args.model} ({sum(p.numel() for p in model.parameters()):,} parameters)"
              f" on {x.shape[0]} images, validating on {xv.shape[0]}; rule {config.rule}, "
              f"m={config.restarts}, device {device} -> {args.out}", file=sys.stderr)  # fmt: skip
    try:
        history = train(
            model, (x, y), (xv, yv), config, args.out, resume=args.resume, progress=progress,
            max_steps=args.max_steps, meta=meta, overwrite=args.overwrite,
        )  # fmt: skip
    except (FileExistsError, ValueError) as error:
        raise UsageError(str(error)) from None
    last = history.epochs[-1] if history.epochs else {}
    print(json.dumps({"status": history.status, "out": str(args.out), **last}))
    if history.status == "interrupted":
        print(f"{PROG} train: interrupted; checkpoint written. Continue with --resume.",
              file=sys.stderr)  # fmt: skip
        return 130
    return 0


def _resolve_checkpoint(path: Path) -> Path:
    if path.is_dir():
        for name in ("best.pt", "checkpoint.pt"):
            if (path / name).is_file():
                return path / name
        raise UsageError(f"{path} holds neither best.pt nor checkpoint.pt")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    return path


def cmd_evaluate(args: argparse.Namespace) -> int:
    from problems import cifar10
    from problems.evaluation import evaluate, parse_attacks
    from problems.models import build_model
    from problems.training import load_checkpoint

    try:
        attacks = parse_attacks(args.attacks)
    except ValueError as error:
        raise UsageError(str(error)) from None
    path = _resolve_checkpoint(args.checkpoint)
    try:
        state = load_checkpoint(path)
    except Exception as error:  # not a torch file, truncated, unsafe content
        raise UsageError(f"cannot read checkpoint {path}: {error}") from None
    meta, config = state.get("meta") or {}, state.get("config") or {}
    if not isinstance(meta.get("model"), dict):
        raise UsageError(f"{path} has no model description (was it written by `minimax train`?)")
    data_dir = args.data_dir or Path(meta.get("data_dir", "data"))
    progress = not args.no_progress
    x, y, xt, yt = _load_data(meta.get("dataset", "cifar10"), data_dir, args.download, progress)
    if args.split == "val":
        if not meta.get("val_split"):
            raise UsageError("this run had no validation split (--val-split 0)")
        _, _, xt, yt = cifar10.train_val_split(x, y, meta["val_split"], seed=config.get("seed", 0))
    if args.limit:
        xt, yt = xt[: args.limit], yt[: args.limit]
    model = build_model(**meta["model"])
    model.load_state_dict(state["model"])
    eps = args.eps if args.eps is not None else config.get("eps", 8 / 255)
    device = _device(args.device)
    try:
        result = evaluate(
            model, (xt, yt), eps=eps, attacks=attacks, restarts=args.restarts,
            batch_size=args.batch_size, seed=args.seed, device=device,
            norm=config.get("norm", "linf"), progress=progress,
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None
    result.update(
        checkpoint=str(path), split=args.split, architecture=meta["model"],
        rule=config.get("rule"), restarts_train=config.get("restarts"),
        epochs=state.get("epoch"), epochs_planned=config.get("epochs"),
    )  # fmt: skip
    out = args.out or path.parent / f"eval-{path.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("clean_acc", "robust_acc", "worst_case_acc",
                                              "autoattack_first_two", "n_examples")}))  # fmt: skip
    if progress:
        print(f"results written to {out}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from problems.report import compare_runs

    names = [n.strip() for n in args.names.split(",")] if args.names else None
    if names is not None and len(names) != len(args.runs):
        raise UsageError(f"--names has {len(names)} labels for {len(args.runs)} runs")
    for run in args.runs:
        if not (run / "config.json").is_file():
            raise UsageError(f"{run} is not a training run directory (no config.json)")
    report = compare_runs(args.runs, args.out, names=names)
    print(str(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
