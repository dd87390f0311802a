"""Figure conventions shared by the reports and the demo (matplotlib, Agg backend).

Public API::

    run_style(i) -> dict      run i's distinct color, linestyle, marker, linewidth, markersize
    fit_title(ax, title)      the title wrapped to the axes' width
    integer_ticks(ax, axis="x")   integer ticks only (epochs, steps)
    INTEGER_AXES              record keys that count (epoch, step, ...)

Colour, line style and marker all change from one run to the next, so identical curves still
show as distinct lines. Figures use constrained layout, so wrapped titles are never clipped.
"""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

__all__ = ["INTEGER_AXES", "fit_title", "integer_ticks", "run_style"]

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
