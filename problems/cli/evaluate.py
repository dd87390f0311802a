"""``minimax evaluate``: clean and robust accuracy of a model file under a stated threat model.

``add_arguments(parser)`` declares the options (attack names come from `minimax.extend.ATTACKS` and
`minimax.extend.SUITES`); ``run(args)`` reads the model (`problems.model_files`: a ``minimax train``
checkpoint, a state_dict with ``--model``, or a trusted TorchScript file), evaluates it on the
data set, writes the results JSON and prints the threat model and the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import minimax

from ..data.datasets import DATASETS
from ..data.splits import train_val_split
from ..evaluation import DEFAULT_ATTACKS, evaluate, parse_attacks
from ..files import atomic_write_text, remove_orphans
from ..model_files import ModelFile
from ..models import ACTIVATIONS, MODELS, NORMALIZATIONS
from ..threats import THREATS
from .evaluated_model import build_evaluated_model, probe, read_model
from .types import (
    UsageError,
    add_threads_argument,
    check_radius,
    load_data,
    nonnegative_number,
    path,
    positive_int,
    random_seed,
    rank_options,
    resolve_device,
    restarts,
    set_threads,
)

__all__ = ["DESCRIPTION", "EPILOG", "HELP", "add_arguments", "run", "threat_line"]

HELP = "robust accuracy of a model (checkpoint, state_dict or TorchScript) on a test set"
DESCRIPTION = (
    "Clean and robust accuracy of a classifier under AutoAttack's standard suite (APGD-CE,\n"
    "APGD-T, Square) or named attacks, worst case per example, with a RobustBench record."
)
EPILOG = (
    textwrap.dedent(
        """\
    examples:
      minimax evaluate runs/ddi --data-dir data              # best.pt, standard suite
      minimax evaluate runs/ddi/checkpoint.pt --attacks clean,pgd20,apgd-ce --limit 1000
      minimax evaluate weights.pt --model resnet18 --activation celu --normalization group \\
          --dataset cifar10 --eps 8/255 --robustbench weights.robustbench.json
      minimax evaluate model.ts --torchscript --dataset digits --eps 0.1
    MODEL is a run directory (its best.pt, else checkpoint.pt), a checkpoint written by
    `minimax train`, a state_dict saved with torch.save (give --model and the architecture
    flags it was built with), or with --torchscript a TorchScript archive. Weights are read
    with torch.load(weights_only=True); a TorchScript archive runs the code it holds when
    loaded, so pass --torchscript only for files you trust. Non-finite weights are refused.
    attacks (--attacks, comma-separated; a step count may follow, e.g. pgd20, apgd-ce50):
      clean: no attack (the clean accuracy is always reported)
    """
    )
    + "".join(
        f"  {name}: {minimax.extend.ATTACKS.help(name)}\n"
        for name in minimax.extend.ATTACKS.names()
    )
    + (
        "".join(
            f"  {suite} (suite): {', '.join(members)}\n"
            for suite, members in minimax.extend.SUITES.items()
        )
    )
)

_DEFAULT_EPS = {"linf": 8 / 255, "l2": 0.5}  # RobustBench's CIFAR-10 radii


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``minimax evaluate``, in groups: model, data, threat model, run."""
    _model_arguments(parser.add_argument_group("model"))
    _data_arguments(parser.add_argument_group("data"))
    _threat_arguments(parser.add_argument_group("threat model and attacks"))
    _run_arguments(parser.add_argument_group("run"))


def _model_arguments(p: Any) -> None:
    p.add_argument(
        "checkpoint",
        type=path,
        metavar="MODEL",
        help="run directory, best.pt / checkpoint.pt, a state_dict file, or (with "
        "--torchscript) a TorchScript file",
    )
    p.add_argument(
        "--torchscript",
        action="store_true",
        help="MODEL is a TorchScript archive you trust (loading runs its code)",
    )
    p.add_argument(
        "--model",
        choices=MODELS.names(),
        default=None,
        help="the architecture of a plain state_dict (default: none; checkpoints "
        "written by `minimax train` describe their own)",
    )
    p.add_argument(
        "--activation", choices=ACTIVATIONS, default="relu", help="with --model (default: relu)"
    )
    p.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default="batch",
        help="normalization layers, with --model (default: batch)",
    )
    p.add_argument(
        "--width",
        type=positive_int,
        default=32,
        help="small_cnn's width, with --model (default: 32)",
    )


def _data_arguments(d: Any) -> None:
    d.add_argument(
        "--dataset",
        choices=DATASETS.names(),
        default=None,
        help="default: the run's data set, else cifar10",
    )
    d.add_argument(
        "--data-dir",
        type=path,
        default=None,
        help="the data directory (default: the run's, else data)",
    )
    d.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    d.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="val: the run's held-out training images (default: test)",
    )
    d.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="the first N images only (default: all)",
    )


def _threat_arguments(t: Any) -> None:
    t.add_argument(
        "--threat",
        choices=THREATS.names(),
        default=None,
        help="the perturbation ball (default: the run's, else linf)",
    )
    t.add_argument(
        "--eps",
        type=nonnegative_number,
        default=None,
        help="radius (default: the run's eps, else 8/255 for linf, 0.5 for l2)",
    )
    t.add_argument(
        "--allow-large-eps",
        action="store_true",
        help="accept an L∞ --eps over 1 (the whole [0, 1] pixel range), e.g. to "
        "evaluate a run trained with --allow-large-eps",
    )
    t.add_argument(
        "--attacks",
        default=",".join(DEFAULT_ATTACKS),
        help=f"comma-separated names or suites (default: {','.join(DEFAULT_ATTACKS)})",
    )
    t.add_argument(
        "--restarts", type=restarts, default=1, help="random restarts per attack (default: 1)"
    )
    t.add_argument(
        "--no-cascade",
        action="store_true",
        help="run every attack on every clean-correct example (default: AutoAttack's "
        "cascade, each attack on the examples still robust)",
    )


def _run_arguments(r: Any) -> None:
    r.add_argument("--batch-size", type=positive_int, default=256, help="(default: 256)")
    r.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (default)")
    r.add_argument("--seed", type=random_seed, default=0, help="seeds the attacks (default: 0)")
    r.add_argument(
        "--out",
        type=path,
        default=None,
        help="results JSON (default: eval-<model file>.json beside it)",
    )
    r.add_argument(
        "--robustbench",
        type=path,
        default=None,
        metavar="JSON",
        help="also write the RobustBench model-info record there",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted evaluation from its progress file (<out>.progress), "
        "to the same result; without it an evaluation starts afresh",
    )
    r.add_argument(
        "--chunk",
        type=positive_int,
        default=4096,
        metavar="N",
        help="write the progress (atomically) after every N examples, rounded up to whole "
        "batches (default: 4096)",
    )
    add_threads_argument(r)


def threat_line(result: dict[str, Any], split: str) -> str:
    """One line stating the threat model and attacks of an evaluation result."""
    record = result.get("robustbench") or {}
    eps = record.get("eps") or f"{result['eps']:g}"
    attacks = [a for a in result["attacks"] if a != "clean"]
    how = []
    if result.get("suite"):
        how.append(f"{result['suite']} suite")
    if attacks:
        how.append("cascade" if result.get("cascade") else "each attack on every example")
    listed = ", ".join(attacks) or "none (clean accuracy only)"
    return (
        f"threat model: {result['threat_model']} ball, eps = {eps} ({result['eps']:.6g}), "
        f"inputs in [0, 1]; data: {result.get('dataset')} {split} split, "
        f"{result['n_examples']} examples; attacks: {listed}"
        + (f" ({', '.join(how)})" if how else "")
        + f"; {result['restarts']} restart(s); worst case per example"
    )


def _data(args: argparse.Namespace, file: ModelFile, progress: bool) -> tuple[str, Any, Any]:
    """The data set's name, the data set, and the (images, labels) to evaluate on."""
    meta = file.meta
    dataset = args.dataset or meta.get("dataset", "cifar10")
    data_dir = args.data_dir or Path(meta.get("data_dir", "data"))
    seed = file.config.get("seed", 0)
    data = load_data(dataset, data_dir, download=args.download, progress=progress, seed=seed)
    xt, yt = data.test
    if args.split == "val":
        if not meta.get("val_split"):
            raise UsageError(
                "--split val needs a run checkpoint whose run held out a "
                "validation split (this one had none)"
            )
        _, _, xt, yt = train_val_split(*data.train, meta["val_split"], seed=seed)
    if args.limit:
        xt, yt = xt[: args.limit], yt[: args.limit]
    return dataset, data, (xt, yt)


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; write the results JSON; print the threat model and the
    headline numbers (the last line is JSON)."""
    try:
        attacks = parse_attacks(args.attacks)
    except ValueError as error:
        raise UsageError(str(error)) from None
    set_threads(args.threads)
    file = read_model(args)
    config = file.config
    progress = not args.no_progress
    dataset, data, (xt, yt) = _data(args, file, progress)
    model, spec = build_evaluated_model(file, args, data)
    probe(model, xt, data.num_classes, file.path)
    threat = args.threat or config.get("threat", "linf")
    eps = args.eps if args.eps is not None else config.get("eps", _DEFAULT_EPS[threat])
    check_radius("--eps", eps, threat, args.allow_large_eps)
    from ..distributed import Ranks, rank_file

    ranks = Ranks.from_env()  # under torchrun: each rank evaluates a shard; exact counts
    out = args.out or file.path.parent / f"eval-{file.path.stem}.json"
    progress_file = out.with_name(out.name + ".progress")
    mine = rank_file(progress_file, ranks)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(out.parent, [mine.name])  # left by a killed write
    if args.resume and not mine.is_file() and progress and ranks.is_main:
        print(f"no progress in {mine} yet: starting afresh", file=sys.stderr)
    settings = {"eps": eps, "attacks": attacks, "norm": threat, "dataset": dataset}
    result = _evaluate(args, model, (xt, yt), ranks, progress_file, **settings)
    if not ranks.is_main:
        mine.unlink(missing_ok=True)  # every rank has finished (the counts were gathered)
        return 0
    result.update(
        checkpoint=str(file.path),
        model_file=file.kind,
        split=args.split,
        architecture=spec,
        rule=config.get("rule"),
        restarts_train=config.get("restarts"),
        epochs=file.epoch,
        epochs_planned=config.get("epochs"),
    )
    _write(out, result, progress)
    mine.unlink(missing_ok=True)  # the result is written: nothing to resume
    if args.robustbench is not None and result.get("robustbench") is not None:
        _write(args.robustbench, result["robustbench"], progress)
    print(threat_line(result, args.split))
    print(json.dumps({k: result[k] for k in _HEADLINE}))
    return 0


#: the keys of the result printed as the last line (JSON)
_HEADLINE = (
    "clean_acc",
    "robust_acc",
    "worst_case_acc",
    "autoattack_first_two",
    "n_examples",
    "threat_model",
    "eps",
    "dataset",
)


def _evaluate(
    args: argparse.Namespace,
    model: Any,
    data: tuple[Any, Any],
    ranks: Any,
    progress_file: Path,
    **settings: Any,
) -> dict[str, Any]:
    """`problems.evaluation.evaluate` on this rank's shard (every rank's counts gathered),
    resumable from ``progress_file``; ``settings``: eps, attacks, norm and dataset."""
    from ..distributed import evaluate_sharded

    with ranks:  # leaves the process group
        try:
            ranks.agree(rank_options(args), "minimax evaluate")  # a mismatch: ValueError, exit 2
            return evaluate_sharded(
                evaluate,
                model,
                data,
                ranks,
                restarts=args.restarts,
                batch_size=args.batch_size,
                seed=args.seed,
                device=ranks.device(resolve_device(args.device)),
                progress=not args.no_progress and ranks.is_main,
                cascade=not args.no_cascade,
                allow_large_eps=args.allow_large_eps,
                progress_file=progress_file,
                resume=args.resume,
                chunk=args.chunk,
                **settings,
            )
        except ValueError as error:
            raise UsageError(str(error)) from None


def _write(path: Path, content: dict[str, Any], progress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(content, indent=2) + "\n")
    if progress:
        print(f"written to {path}", file=sys.stderr)
