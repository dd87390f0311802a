"""RobustBench's ``model_info`` record of an `Evaluation`, and its atomic writer.

Public: `robustbench_record` (the record as a dict), `write_robustbench` (written as JSON).

    result = minimax.evaluate(model, (x, y), eps=8/255)
    minimax.write_robustbench(result, "model.json", dataset="cifar10", name="my model")
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minimax.atomic import atomic_file
from minimax.attacks import SUITES

if TYPE_CHECKING:  # minimax.robustness imports this module
    from minimax.robustness import Evaluation

__all__ = ["robustbench_record", "write_robustbench"]


def _eps_string(eps: float) -> str:
    """RobustBench writes ε as ``"8/255"`` for fractions of 255, else as a number (``"0.5"``)."""
    k = eps * 255
    if 0 < round(k) < 255 and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:g}"


def robustbench_record(result: Evaluation, *, dataset: str, **info: Any) -> dict[str, Any]:
    """The evaluation as a RobustBench ``model_info`` record.

    Percentages rounded to 2 decimals and written as strings (``"clean_acc": "85.34"``), ``eps``
    as RobustBench writes it (``"8/255"``, ``"0.5"``), ``dataset`` (e.g. ``"cifar10"``) and
    ``threat_model`` (``"Linf"`` / ``"L2"``). The robust accuracy goes under ``autoattack_acc``
    when the standard suite (or a superset of it) ran with ``cascade``, else under
    ``robust_acc``; ``footnote`` names the attacks. ``info`` adds RobustBench's descriptive
    fields (``name``, ``link``, ``authors``, ``architecture``, ``venue``, ...).
    """
    if not isinstance(dataset, str) or not dataset:
        raise ValueError("dataset must be a non-empty name, e.g. 'cifar10'")
    standard = set(SUITES["standard"]) <= set(result.attacks) and result.cascade
    key = "autoattack_acc" if standard else "robust_acc"
    note = f"minimax {', '.join(result.attacks)} on {result.n_examples} examples" + (
        " (AutoAttack's standard suite)" if standard else ""
    )
    record: dict[str, Any] = dict(info)
    record.update(
        {
            "dataset": dataset,
            "threat_model": {"linf": "Linf", "l2": "L2"}[result.norm],
            "eps": _eps_string(result.eps),
            "clean_acc": f"{100 * result.clean_acc:.2f}",
            key: f"{100 * result.robust_acc:.2f}",
            "footnote": note,
        }
    )
    return record


def write_robustbench(
    result: Evaluation, path: str | Path, *, dataset: str, **info: Any
) -> dict[str, Any]:
    """Write `robustbench_record` as JSON to ``path``; returns the record.

    Written atomically (a temporary file in the same directory, then renamed: a crash leaves the
    previous file intact), never through a symbolic link at ``path``, with the permissions of a
    plain new file (0666 less the umask). A result holding NaN or Inf is refused."""
    from minimax.robustness import Evaluation

    if not isinstance(result, Evaluation):
        raise TypeError(f"result must be an Evaluation (from evaluate), got {type(result)}")
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"path must be a file name, got {path!r}")
    numbers = {"clean_acc": result.clean_acc, "robust_acc": result.robust_acc, "eps": result.eps}
    numbers.update({f"per_attack[{k!r}]": v for k, v in result.per_attack.items()})
    bad = [k for k, v in numbers.items() if not (isinstance(v, float) and math.isfinite(v))]
    if bad:
        raise ValueError(
            f"result holds NaN or Inf in {bad}: refusing to write a RobustBench record of it; "
            "re-run evaluate"
        )
    record = robustbench_record(result, dataset=dataset, **info)
    _write_atomically(Path(path), json.dumps(record, indent=2, allow_nan=False) + "\n")
    return record


def _write_atomically(path: Path, text: str) -> None:
    """``text`` to ``path``: refused through a link or onto a directory; a temporary file next
    to it, fsynced, then renamed over it (the rename replaces a link, never follows it)."""
    if path.is_symlink():
        raise ValueError(
            f"path {str(path)!r} is a symbolic link: refusing to write through it; pass the "
            "real file's path, or remove the link"
        )
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a directory: pass a file name such as x.json")
    if not path.parent.is_dir():
        raise ValueError(f"path {str(path)!r}: its directory does not exist; create it first")
    with atomic_file(path, "w") as f:
        f.write(text)
