"""``minimax evaluate``: clean and robust accuracy of a checkpoint written by ``minimax train``.

``add_arguments(parser)`` declares the options (the attack names come from
`problems.evaluation.ATTACKS`); ``run(args)`` evaluates, writes the results JSON and prints the
headline numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from problems.cli.types import (
    UsageError,
    load_data,
    nonnegative_number,
    positive_int,
    resolve_device,
)
from problems.data.splits import train_val_split
from problems.evaluation import ATTACKS, DEFAULT_ATTACKS, evaluate, parse_attacks
from problems.files import atomic_write_text
from problems.models import build_model
from problems.training import load_checkpoint

__all__ = ["DESCRIPTION", "EPILOG", "HELP", "add_arguments", "run"]

HELP = "robust accuracy of a checkpoint on the test set"
DESCRIPTION = "Clean and robust accuracy (PGD, APGD-CE, APGD-DLR) of a trained model."
EPILOG = textwrap.dedent(
    """\
    examples:
      minimax evaluate runs/ddi/best.pt --data-dir data
      minimax evaluate runs/ddi --attacks clean,pgd20,apgd-ce,apgd-dlr --limit 1000 \\
          --out runs/ddi/eval.json
    A run directory means its best.pt (else checkpoint.pt).
    attacks:
    """
) + "".join(f"  {name}: {ATTACKS.help(name)}\n" for name in ATTACKS.names())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``minimax evaluate``."""
    p = parser
    p.add_argument("checkpoint", type=Path, help="best.pt, checkpoint.pt, or a run directory")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="the data directory (default: the one the run was trained on)")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                   help=f"comma-separated (default: {','.join(DEFAULT_ATTACKS)})")
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


def _resolve_checkpoint(path: Path) -> Path:
    if path.is_dir():
        for name in ("best.pt", "checkpoint.pt"):
            if (path / name).is_file():
                return path / name
        raise UsageError(f"{path} holds neither best.pt nor checkpoint.pt")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    return path


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(state, meta, config) of a checkpoint written by ``minimax train``."""
    try:
        state = load_checkpoint(path)
    except Exception as error:  # not a torch file, truncated, unsafe content
        raise UsageError(f"cannot read checkpoint {path}: {error}") from None
    meta, config = state.get("meta") or {}, state.get("config") or {}
    if not isinstance(meta.get("model"), dict):
        raise UsageError(f"{path} has no model description (was it written by `minimax train`?)")
    return state, meta, config


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; write the results JSON; print the headline numbers."""
    try:
        attacks = parse_attacks(args.attacks)
    except ValueError as error:
        raise UsageError(str(error)) from None
    path = _resolve_checkpoint(args.checkpoint)
    state, meta, config = _read_checkpoint(path)
    data_dir = args.data_dir or Path(meta.get("data_dir", "data"))
    progress = not args.no_progress
    seed = config.get("seed", 0)
    data = load_data(meta.get("dataset", "cifar10"), data_dir, download=args.download,
                     progress=progress, seed=seed)  # fmt: skip
    xt, yt = data.test
    if args.split == "val":
        if not meta.get("val_split"):
            raise UsageError("this run had no validation split (--val-split 0)")
        _, _, xt, yt = train_val_split(*data.train, meta["val_split"], seed=seed)
    if args.limit:
        xt, yt = xt[: args.limit], yt[: args.limit]
    model = build_model(**meta["model"])
    model.load_state_dict(state["model"])
    eps = args.eps if args.eps is not None else config.get("eps", 8 / 255)
    from problems.distributed import Ranks, evaluate_sharded

    ranks = Ranks.from_env()  # under torchrun: each rank evaluates a shard; exact counts
    device = ranks.device(resolve_device(args.device))
    try:
        result = evaluate_sharded(
            evaluate, model, (xt, yt), ranks, eps=eps, attacks=attacks, restarts=args.restarts,
            batch_size=args.batch_size, seed=args.seed, device=device,
            norm=config.get("norm", "linf"), progress=progress and ranks.is_main,
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None
    finally:
        ranks.close()
    if not ranks.is_main:
        return 0
    result.update(
        checkpoint=str(path), split=args.split, architecture=meta["model"],
        rule=config.get("rule"), restarts_train=config.get("restarts"),
        epochs=state.get("epoch"), epochs_planned=config.get("epochs"),
    )  # fmt: skip
    out = args.out or path.parent / f"eval-{path.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("clean_acc", "robust_acc", "worst_case_acc",
                                              "autoattack_first_two", "n_examples")}))  # fmt: skip
    if progress:
        print(f"results written to {out}", file=sys.stderr)
    return 0
