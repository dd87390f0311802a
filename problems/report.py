"""Plots (matplotlib, Agg backend) and a small self-contained HTML report for training runs.

Public API::

    plot_curves(histories, *, x="epoch", y="robust_acc", path, title=None, xlabel=None,
                ylabel=None, logy=False, smooth=1) -> Path
    curves_figure(histories, ...same options...) -> matplotlib Figure (the caller closes it)
    load_evaluations(run_dir) -> {file stem: result}    the eval-*.json of ``minimax evaluate``
    plot_evaluations(evaluations, path) -> Path         clean / per-attack / worst-case bars
    plot_loss_curves(histories, path, *, title="Training robust loss", x="epoch") -> Path
    summary_table(histories) -> (header list[str], rows list[list[str]])
    write_html(path, title, sections, tables=(), *, intro=None) -> Path
    compare_runs(run_dirs, out_dir, *, names=None) -> Path        (report.html + PNGs)

Each run gets its own colour, line style and marker, so identical curves stay visible; titles
are wrapped to the axes' width (constrained layout), and epoch / step axes get integer ticks.

``histories`` maps a label to a `problems.training.RunHistory` or to any list of records (dicts);
``x`` and ``y`` are record keys, so the same function plots epoch records, step records or a
demo's own metrics. Records where x or y is missing or None are skipped.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from problems.figures import INTEGER_AXES, fit_title, integer_ticks, run_style
from problems.files import atomic_write_text, save_figure
from problems.training.history import RunHistory, load_history

__all__ = [
    "compare_runs",
    "curves_figure",
    "evaluation_table",
    "load_evaluations",
    "plot_curves",
    "plot_evaluations",
    "plot_loss_curves",
    "summary_table",
    "write_html",
]

Records = Sequence[Mapping[str, Any]]
Histories = Mapping[str, "RunHistory | Records"]

_LABELS = {
    "epoch": "epoch",
    "wall": "training wall-clock (s)",
    "step": "step",
    "robust_acc": "validation robust accuracy",
    "clean_acc": "validation clean accuracy",
    "train_loss": "training robust loss",
    "robust_loss": "batch robust loss",
    "mean_norm": "mean ‖d‖",
    "norm": "‖d‖",
    "went_up_fraction": "fraction of steps whose robust loss went up",
    "iteration": "iteration",
}


def _records(history: RunHistory | Records) -> Records:
    return history.epochs if isinstance(history, RunHistory) else history


def _xy(records: Records, x: str, y: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        if r.get(x) is not None and r.get(y) is not None:
            xs.append(float(r[x]))
            ys.append(float(r[y]))
    return xs, ys


def _smooth(values: list[float], window: int) -> list[float]:
    if window <= 1:
        return values
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def curves_figure(
    histories: Histories,
    *,
    x: str = "epoch",
    y: str = "robust_acc",
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    logy: bool = False,
    smooth: int = 1,
) -> Figure:
    """One line per run of ``y`` against ``x`` (run i styled by `run_style`); the caller saves
    and closes the figure. ``smooth`` > 1: a trailing moving average of that many points."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110, layout="constrained")
    plotted = 0
    for i, (label, history) in enumerate(histories.items()):
        xs, ys = _xy(_records(history), x, y)
        if not xs:
            continue
        ax.plot(
            xs,
            _smooth(ys, smooth),
            label=label,
            fillstyle="none",
            markevery=max(1, len(xs) // 25),
            **run_style(i),
        )
        plotted += 1
    if not plotted:
        ax.text(
            0.5, 0.5, f"no '{y}' values to plot", ha="center", va="center", transform=ax.transAxes
        )
    ax.set_xlabel(xlabel or _LABELS.get(x, x))
    ax.set_ylabel(ylabel or _LABELS.get(y, y))
    if x in INTEGER_AXES:
        integer_ticks(ax)
    if logy:
        ax.set_yscale("log")
    if title:
        fit_title(ax, title)
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(fontsize="small")
    return fig


def plot_curves(
    histories: Histories,
    *,
    x: str = "epoch",
    y: str = "robust_acc",
    path: str | os.PathLike[str],
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    logy: bool = False,
    smooth: int = 1,
) -> Path:
    """`curves_figure` written as a PNG to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = curves_figure(
        histories, x=x, y=y, title=title, xlabel=xlabel, ylabel=ylabel, logy=logy, smooth=smooth
    )
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def plot_loss_curves(
    histories: Histories,
    path: str | os.PathLike[str],
    *,
    title: str = "Training robust loss",
    x: str = "epoch",
) -> Path:
    """The training robust loss (``train_loss``) of each run against ``x``."""
    return plot_curves(histories, x=x, y="train_loss", path=path, title=title)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
                _fmt(h.last("robust_acc")),
                _fmt(h.best("robust_acc")),
                _fmt(h.last("clean_acc")),
                _fmt(last.get("train_loss")),
                _fmt(last.get("wall")),
                h.status,
            ]
        )
    return header, rows


def write_html(
    path: str | os.PathLike[str],
    title: str,
    sections: Iterable[tuple[str, str | None, str]],
    tables: Iterable[tuple[str, Sequence[str], Sequence[Sequence[Any]]]] = (),
    *,
    intro: str | None = None,
) -> Path:
    """Write a self-contained HTML page.

    sections: (heading, PNG path relative to the page or None, caption). Headings and captions
        are escaped text.
    tables: (heading, column names, rows); cells are escaped text.
    intro: an escaped paragraph under the title.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:.3em .6em;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}"
        "img{max-width:100%}figure{margin:1em 0}figcaption{color:#444}</style>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if intro:
        parts.append(f"<p>{esc(intro)}</p>")
    for heading, header, rows in tables:
        parts.append(f"<h2>{esc(heading)}</h2><table><thead><tr>")
        parts.extend(f"<th>{esc(str(h))}</th>" for h in header)
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
    for heading, image, caption in sections:
        parts.append(f"<h2>{esc(heading)}</h2><figure>")
        if image:
            parts.append(f'<img src="{esc(str(image), quote=True)}" alt="{esc(heading)}">')
        parts.append(f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path


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


def _bars(result: Mapping[str, Any]) -> dict[str, float]:
    bars = {"clean": float(result["clean_acc"])}
    for attack, acc in (result.get("robust_acc") or {}).items():
        if isinstance(acc, (int, float)):
            bars[attack] = float(acc)
    if result.get("robust_acc") and isinstance(result.get("worst_case_acc"), (int, float)):
        bars["worst case"] = float(result["worst_case_acc"])
    return bars


def plot_evaluations(
    evaluations: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str = "Evaluation (minimax evaluate)",
) -> Path:
    """Grouped bars: clean, per-attack and worst-case accuracy, one group per measure and one
    bar (colour and hatch of `run_style`) per evaluation; writes a PNG to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bars = {label: _bars(result) for label, result in evaluations.items()}
    measures = list(dict.fromkeys(m for b in bars.values() for m in b))
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110, layout="constrained")
    try:
        width = 0.8 / max(1, len(bars))
        hatches = ("", "//", "..", "xx", "\\\\", "++")
        for i, (label, values) in enumerate(bars.items()):
            xs = [
                j + (i - (len(bars) - 1) / 2) * width for j, m in enumerate(measures) if m in values
            ]
            ax.bar(
                xs,
                [values[m] for m in measures if m in values],
                width,
                label=label,
                color=run_style(i)["color"],
                hatch=hatches[i % len(hatches)],
                edgecolor="black",
                linewidth=0.5,
            )
        ax.set_xticks(range(len(measures)), measures, rotation=20, ha="right")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        fit_title(ax, title)
        ax.grid(alpha=0.3, axis="y")
        if bars:
            ax.legend(fontsize="small")
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


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
        eps = (r.get("robustbench") or {}).get("eps") or _fmt(r.get("eps"))
        attacks = ", ".join(a for a in r.get("attacks", []) if a != "clean")
        first_two = r.get("autoattack_first_two") if "threat_model" in r else None
        rows.append(
            [
                label,
                _fmt(r.get("dataset")),
                threat,
                eps,
                attacks or "–",
                _fmt(r.get("clean_acc")),
                _fmt(r.get("worst_case_acc")),
                _fmt(first_two),
                _fmt(r.get("n_examples")),
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
    figures = [
        ("robust_acc_epoch.png", "epoch", "robust_acc", "Robust accuracy against epochs"),
        ("robust_acc_wall.png", "wall", "robust_acc", "Robust accuracy against wall-clock"),
        ("clean_acc_epoch.png", "epoch", "clean_acc", "Clean accuracy against epochs"),
        ("clean_acc_wall.png", "wall", "clean_acc", "Clean accuracy against wall-clock"),
        ("loss_epoch.png", "epoch", "train_loss", "Training robust loss against epochs"),
        ("loss_wall.png", "wall", "train_loss", "Training robust loss against wall-clock"),
    ]
    if any(h.last("went_up_fraction") is not None for h in histories.values()):
        figures.append(
            (
                "went_up_epoch.png",
                "epoch",
                "went_up_fraction",
                "Fraction of steps whose robust loss went up (re-measured)",
            )
        )
    sections = []
    for filename, x, y, title in figures:
        plot_curves(histories, x=x, y=y, path=out / filename, title=title)
        sections.append((title, filename, _caption(x, y)))
    steps = {label: h.steps() for label, h in histories.items()}
    if any(steps.values()):
        window = max(1, max(len(s) for s in steps.values()) // 50)
        plot_curves(
            steps,
            x="step",
            y="robust_loss",
            path=out / "loss_steps.png",
            title="Batch robust loss per step",
            smooth=window,
        )
        sections.append(
            (
                "Batch robust loss per step",
                "loss_steps.png",
                f"Moving average over {window} step(s).",
            )
        )
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
