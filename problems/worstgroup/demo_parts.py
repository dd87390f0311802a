"""The worst-group comparison as parts of ``minimax demo`` (``--part adult``, ``--part
mnist1d``): runners with the demo's signature, not in the default parts (each takes minutes).

Public API::

    PARTS                          part name → data set ("adult", "mnist1d")
    part_runner(dataset) -> runner (settings, seeds, eps, out, tick) -> (result, figures)
    part_steps(dataset) -> (settings) -> int      progress-bar steps per seed

The runner runs `problems.worstgroup.compare.compare` with the committed sizes on the demo's
seeds (``eps`` and the demo's settings do not apply), writes the two figures into ``out``, and
returns the comparison's JSON with ``[(heading, file, findings key)]`` for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from problems.worstgroup.compare import SETTINGS, CompareSettings, compare
from problems.worstgroup.figures import DATASET_LABELS, plot_accuracy, plot_curves
from problems.worstgroup.train import RULES

__all__ = ["PARTS", "part_runner", "part_steps"]

PARTS: dict[str, str] = {"adult": "adult", "mnist1d": "mnist1d"}
Figures = list[tuple[str, str, str]]


def _steps(dataset: str) -> dict[str, int]:
    """Setting → training steps of one seed (every rule; tuning runs once, not counted)."""
    out = {}
    for setting in SETTINGS[dataset]:
        spec = setting.spec
        n = {"adult": 26_049, "mnist1d": 3_601}[dataset]  # approximate: the bar only
        per_pass = 1 if spec.batch_size is None else -(-n // spec.batch_size)
        out[setting.name] = spec.passes * per_pass * len(RULES)
    return out


def part_steps(dataset: str) -> Callable[[Any], int]:
    """Progress-bar steps of one seed of the part (the demo's settings are not used)."""
    total = sum(_steps(dataset).values())
    return lambda _settings: total


def part_runner(dataset: str) -> Callable[..., tuple[dict[str, Any], Figures]]:
    """The demo runner of ``dataset``'s comparison."""
    if dataset not in SETTINGS:
        raise ValueError(f"no worst-group part for {dataset!r}: choose one of {', '.join(PARTS)}")

    def run(
        settings: Any, seeds: Sequence[int], eps: float, out: Path, tick: Any
    ) -> tuple[dict[str, Any], Figures]:
        del settings, eps  # the comparison has its own sizes and no perturbation
        steps = _steps(dataset)
        tick.bar.set_description(f"worst-group {dataset}")

        def progress(text: str) -> None:
            name = text.split(": ", 1)[-1]
            tick.bar.update(steps.get(name, 0) * len(seeds))

        result = compare(CompareSettings.full(dataset, seeds=tuple(seeds)), progress=progress)
        curves = plot_curves(result, Path(out) / f"worstgroup-{dataset}-curves.png")
        accuracy = plot_accuracy(result, Path(out) / f"worstgroup-{dataset}-accuracy.png")
        label = DATASET_LABELS[dataset]
        return result, [
            (f"{label}: worst-group training loss", curves.name, dataset),
            (f"{label}: worst-group test accuracy", accuracy.name, dataset),
        ]

    return run
