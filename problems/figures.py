"""Figure conventions shared by the reports and the demo (matplotlib, Agg backend).

Public API::

    run_style(i) -> dict      run i's distinct color, linestyle, marker, linewidth, markersize
    fit_title(ax, title)      the title wrapped to the axes' width
    integer_ticks(ax, axis="x")   integer ticks only (epochs, steps)
    INTEGER_AXES              record keys that count (epoch, step, ...)
    seed_bands(ax, series)    per series: the mean over seeds as a styled line, the range over
                              the seeds shaded

Colour, line style and marker all change from one run to the next, so identical curves still
show as distinct lines. Figures use constrained layout, so wrapped titles are never clipped.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

__all__ = ["INTEGER_AXES", "fit_title", "integer_ticks", "run_style", "seed_bands"]

INTEGER_AXES = ("epoch", "step", "iteration")
_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "x", "P", "*")
_SIZES = (8.0, 6.0, 4.5, 3.0)
_WIDTHS = (3.4, 2.4, 1.5, 0.9)  # a later, thinner line leaves an earlier one visible


def run_style(i: int) -> dict[str, Any]:
    """Run i's line style: colour, line style, marker and width all change from one run to the
    next (so two identical curves show as two lines), repeating only after many runs."""
    return {
        "color": _COLORS[i % len(_COLORS)],
        "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "linewidth": _WIDTHS[i % len(_WIDTHS)],
        "markersize": _SIZES[i % len(_SIZES)],
    }


def fit_title(ax: Axes, title: str) -> None:
    """``title`` wrapped to the axes' width (a character is about half the font size wide)."""
    width_in = ax.bbox.width / ax.figure.dpi
    title_points = 1.2 * float(plt.rcParams["font.size"])  # the "large" title font
    ax.set_title(textwrap.fill(title, max(20, int(width_in * 72 / (0.5 * title_points)))))


def integer_ticks(ax: Axes, axis: str = "x") -> None:
    """Only integer tick positions on ``axis`` (epochs, steps, iterations)."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def seed_bands(
    ax: Axes, series: Mapping[str, tuple[Sequence[float], Sequence[Sequence[float]]]]
) -> None:
    """Draw each series {label: (x [n], per-seed y [seeds][n])}: the mean over seeds as a line in
    `run_style` (colour, line style and marker differ between series) and the range over the
    seeds (min to max) shaded in the line's colour. A None y (not measured) is left out."""
    for i, (label, (xs, per_seed)) in enumerate(series.items()):
        if not per_seed:
            raise ValueError(f"series {label!r} has no seeds: pass at least one y list")
        if any(len(ys) != len(xs) for ys in per_seed):
            raise ValueError(f"series {label!r}: every seed needs one y per x ({len(xs)})")
        keep = [j for j in range(len(xs)) if all(ys[j] is not None for ys in per_seed)]
        x = [xs[j] for j in keep]
        columns = [[float(ys[j]) for ys in per_seed] for j in keep]
        style = run_style(i)
        mean = [sum(c) / len(c) for c in columns]
        ax.plot(x, mean, label=label, **style)
        if len(per_seed) > 1:
            low, high = [min(c) for c in columns], [max(c) for c in columns]
            ax.fill_between(x, low, high, color=style["color"], alpha=0.15, linewidth=0)
