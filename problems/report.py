"""Plots (matplotlib, Agg backend) and a small self-contained HTML page for training runs: the
building blocks of `problems.comparison` and the demo's report.

Public API::

    plot_curves(histories, *, x="epoch", y="robust_acc", path, title=None, xlabel=None,
                ylabel=None, logy=False, smooth=1) -> Path
    curves_figure(histories, ...same options...) -> matplotlib Figure (the caller closes it)
    plot_evaluations(evaluations, path) -> Path         clean / per-attack / worst-case bars
    plot_loss_curves(histories, path, *, title="Training robust loss", x="epoch") -> Path
    write_html(path, title, sections, tables=(), *, intro=None) -> Path
    format_cell(value) -> str                           a table cell ("–" for None)

Each run gets its own colour, line style and marker, so identical curves stay visible; titles
are wrapped to the axes' width (constrained layout), and epoch / step axes get integer ticks.

``histories`` maps a label to a `problems.training.RunHistory` or to any list of records (dicts);
``x`` and ``y`` are record keys, so the same function plots epoch records, step records or a
demo's own metrics. Records where x or y is missing or None are skipped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .figures import INTEGER_AXES, fit_title, integer_ticks, run_style
from .files import atomic_write_text, save_figure
from .training.history import RunHistory

__all__ = [
    "curves_figure",
    "format_cell",
    "plot_curves",
    "plot_evaluations",
    "plot_loss_curves",
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


def format_cell(value: Any) -> str:
    """A table cell: "–" for None, 4 significant digits for a float."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
            parts.append("<tr>" + "".join(f"<td>{esc(format_cell(c))}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
    for heading, image, caption in sections:
        parts.append(f"<h2>{esc(heading)}</h2><figure>")
        if image:
            parts.append(f'<img src="{esc(str(image), quote=True)}" alt="{esc(heading)}">')
        parts.append(f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path


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
