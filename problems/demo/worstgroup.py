"""Part 3 of the demo: worst-class training on the digits (`problems.worstclass`): ERM, Danskin,
DDi with a tolerance and online Group DRO at equal steps, over the demo's seeds.

Public API::

    run_worstgroup(s, seeds, advance) -> dict   compare_worstclass's result (95% intervals, paired
                                                tests); advance(n) moves the progress bar n steps
    worstgroup_steps(s) -> int                  progress-bar steps per seed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..worstclass import compare_worstclass
from .common import DemoSettings

__all__ = ["run_worstgroup", "worstgroup_steps"]


def worstgroup_steps(s: DemoSettings) -> int:
    """Outer steps of one seed: every rule's steps."""
    w = s.worstclass
    return w.steps * len(w.rules)


def run_worstgroup(
    s: DemoSettings, seeds: Sequence[int], advance: Callable[[int], None]
) -> dict[str, Any]:
    """`compare_worstclass` on ``seeds`` with the demo's worst-class settings."""
    return compare_worstclass(seeds, s.worstclass, on_seed=lambda _: advance(worstgroup_steps(s)))
