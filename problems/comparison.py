"""`minimax compare`: runs side by side in one report.html (curves against epochs and
wall-clock, the went-up fraction, the runs' ``eval-*.json`` results), and its tables.

Public API::

    compare_runs(run_dirs, out_dir, *, names=None) -> Path        (report.html + PNGs)
    summary_table(histories) -> (header list[str], rows list[list[str]])
    load_evaluations(run_dir) -> {file stem: result}    the eval-*.json of ``minimax evaluate``
    evaluation_table(evaluations) -> (header list[str], rows list[list[str]])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import format_cell, plot_curves, plot_evaluations, write_html
from .training.history import RunHistory, load_history

__all__ = ["compare_runs", "evaluation_table", "load_evaluations", "summary_table"]

Section = tuple[str, str, str]

_CURVES = [
    ("robust_acc_epoch.png", "epoch", "robust_acc", "Robust accuracy against epochs"),
    ("robust_acc_wall.png", "wall", "robust_acc", "Robust accuracy against wall-clock"),
    ("clean_acc_epoch.png", "epoch", "clean_acc", "Clean accuracy against epochs"),
    ("clean_acc_wall.png", "wall", "clean_acc", "Clean accuracy against wall-clock"),
    ("loss_epoch.png", "epoch", "train_loss", "Training robust loss against epochs"),
    ("loss_wall.png", "wall", "train_loss", "Training robust loss against wall-clock"),
]
_WENT_UP = (
    "went_up_epoch.png",
    "epoch",
    "went_up_fraction",
    "Fraction of steps whose robust loss went up (re-measured)",
)


def summary_table(histories: Mapping[str, RunHistory]) -> tuple[list[str], list[list[str]]]:
    """One row per run: rule, m, epochs, last / best robust accuracy, clean accuracy, wall."""
    header = [
        "run",
        "rule",
        "m",
        "epochs",
        "robust acc (last)",
        "robust acc (best)",
        "clean acc (last)",
        "train loss (last)",
        "wall (s)",
        "status",
    ]
    rows = []
    for label, h in histories.items():
        last = h.epochs[-1] if h.epochs else {}
        rows.append(
            [
                label,
                h.config.rule,
                str(h.config.restarts),
                f"{last.get('epoch', 0)}/{h.config.epochs}",
                format_cell(h.last("robust_acc")),
                format_cell(h.best("robust_acc")),
                format_cell(h.last("clean_acc")),
                format_cell(last.get("train_loss")),
                format_cell(last.get("wall")),
                h.status,
            ]
        )
    return header, rows


def load_evaluations(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The results ``minimax evaluate`` wrote into ``run_dir`` (``eval-*.json``), by file stem
    without ``eval-`` (``best``, ``checkpoint``). A file that is not JSON, or not an evaluation
    result (an object with a numeric ``clean_acc``), is refused with a ValueError naming it."""
    found = {}
    for path in sorted(Path(run_dir).glob("eval-*.json")):
        try:
            result = json.loads(path.read_text())
        except ValueError as error:
            raise ValueError(f"{path}: not JSON ({error}); re-run minimax evaluate") from None
        if not (isinstance(result, dict) and isinstance(result.get("clean_acc"), (int, float))):
            raise ValueError(
                f"{path}: not a minimax evaluate result (no numeric clean_acc); move it out of "
                "the run folder or re-run minimax evaluate"
            )
        found[path.stem.removeprefix("eval-")] = result
    return found


def evaluation_table(
    evaluations: Mapping[str, Mapping[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    """One row per evaluation: data set, threat model, attacks, clean / worst-case / first-two
    accuracy and the number of examples. Files from before the threat model was recorded
    counted APGD-DLR as a first-two attack: their first-two cell is left empty."""
    header = [
        "evaluation",
        "dataset",
        "threat",
        "eps",
        "attacks",
        "clean acc",
        "worst-case acc",
        "first two (APGD-CE, APGD-T)",
        "examples",
    ]
    rows = []
    for label, r in evaluations.items():
        threat = r.get("threat_model") or str(r.get("norm", "–"))
        eps = (r.get("robustbench") or {}).get("eps") or format_cell(r.get("eps"))
        attacks = ", ".join(a for a in r.get("attacks", []) if a != "clean")
        first_two = r.get("autoattack_first_two") if "threat_model" in r else None
        rows.append(
            [
                label,
                format_cell(r.get("dataset")),
                threat,
                eps,
                attacks or "–",
                format_cell(r.get("clean_acc")),
                format_cell(r.get("worst_case_acc")),
                format_cell(first_two),
                format_cell(r.get("n_examples")),
            ]
        )
    return header, rows


def compare_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
) -> Path:
    """Plot robust / clean accuracy against epoch and wall-clock, the loss curves, the went-up
    fraction (runs trained with ``remeasure``) and the runs' ``eval-*.json`` results; writes PNGs
    and ``report.html`` into ``out_dir`` and returns the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(names) if names else _unique_names(run_dirs)
    histories = {label: load_history(d) for label, d in zip(labels, run_dirs)}
    sections = _curve_sections(histories, out)
    tables = [("Summary", *summary_table(histories))]
    evaluations = {
        f"{label} ({stem})": result
        for label, d in zip(labels, run_dirs)
        for stem, result in load_evaluations(d).items()
    }
    if evaluations:
        plot_evaluations(evaluations, out / "evaluation.png")
        sections.append(
            (
                "Evaluation",
                "evaluation.png",
                "Clean, per-attack and worst-case "
                "accuracy from each run's eval-*.json (minimax evaluate).",
            )
        )
        tables.append(("Evaluation (minimax evaluate)", *evaluation_table(evaluations)))
    return write_html(
        out / "report.html",
        "minimax: run comparison",
        sections,
        tables,
        intro="Runs: " + ", ".join(f"{k} ({Path(d)})" for k, d in zip(labels, run_dirs)),
    )


def _curve_sections(histories: Mapping[str, RunHistory], out: Path) -> list[Section]:
    """The curves of the runs (went-up fractions where a run re-measured, the batch robust
    loss per step where runs logged steps), written as PNGs into ``out``; their sections."""
    figures = list(_CURVES)
    if any(h.last("went_up_fraction") is not None for h in histories.values()):
        figures.append(_WENT_UP)
    sections = []
    for filename, x, y, title in figures:
        plot_curves(histories, x=x, y=y, path=out / filename, title=title)
        sections.append((title, filename, _caption(x, y)))
    steps = {label: h.steps() for label, h in histories.items()}
    if any(steps.values()):
        window = max(1, max(len(s) for s in steps.values()) // 50)
        title = "Batch robust loss per step"
        path = out / "loss_steps.png"
        plot_curves(steps, x="step", y="robust_loss", path=path, title=title, smooth=window)
        sections.append((title, "loss_steps.png", f"Moving average over {window} step(s)."))
    return sections


def _caption(x: str, y: str) -> str:
    what = {
        "robust_acc": "Validation robust accuracy (PGD).",
        "clean_acc": "Validation clean accuracy.",
        "train_loss": "Mean robust-loss estimate over each "
        "epoch's training batches (the attack's best candidates).",
        "went_up_fraction": "Fraction of each epoch's steps after which the re-run attack "
        "found a higher robust loss than before the step (runs trained with --remeasure).",
    }[y]
    if x == "wall":
        what += " Wall-clock counts training steps only (evaluation excluded)."
    return what


def _unique_names(run_dirs: Sequence[str | os.PathLike[str]]) -> list[str]:
    names: list[str] = []
    for d in run_dirs:
        base = Path(d).resolve().name or str(d)
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names
