"""What the demo's parts share: the sizes of a run, labels and colours, rounding for
summary.json, and the wall-clock keys.

Public API::

    DemoSettings.full() / DemoSettings.quick()
    TIME_KEYS, strip_times(obj)          the wall-clock fields of summary.json, and without them
    RULE_LABELS, SETTING_LABELS, COLORS, UP_TOL
    Recording(rule, on_direction)        a rule that reports every Direction it returns
    negative_pairs(K) -> int; flat(vector) -> Tensor; rounded(x) -> float; pct(x) -> str
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import minimax as mm

from ..worstclass import WorstClassSettings

__all__ = [
    "COLORS",
    "RULE_LABELS",
    "SETTING_LABELS",
    "TIME_KEYS",
    "UP_TOL",
    "DemoSettings",
    "Recording",
    "flat",
    "negative_pairs",
    "pct",
    "rounded",
    "strip_times",
]

TIME_KEYS: frozenset[str] = frozenset(
    {"wall", "seconds", "cpu_seconds", "eval_seconds", "images_per_second", "timings", "final_wall"}
)

#: an exact robust loss "went up" after a step when it rose by more than this (toy problems)
UP_TOL = 1e-6

RULE_LABELS = {
    "danskin": "Danskin (PGD-AT)",
    "maxloss": "MaxLoss",
    "ddi": "DDi",
    "ddi-example": "per-example DDi",
    "ddi-certified": "DDi, certified step",
}
SETTING_LABELS = {"smooth": "CELU, no BatchNorm", "relu_bn": "ReLU + BatchNorm"}
# the colours of `problems.report.plot_curves` (matplotlib's cycle, rules in this order)
COLORS = {"danskin": "tab:blue", "maxloss": "tab:orange", "ddi": "tab:green"}


@dataclass(frozen=True)
class DemoSettings:
    """The sizes of one demo run (`full` or `quick`)."""

    # counterexample
    ce_iterations: int = 20
    ce_step: float = 0.1
    ce_restarts: int = 10
    # the paper's ELU toy (problems.demo.conflict)
    toy_iterations: int = 500
    toy_lr: float = 0.01
    toy_restarts: int = 10
    toy_pgd_steps: int = 10
    toy_resolution: int = 51
    toy_eval_every: int = 25
    toy_probe_every: int = 10
    # digits
    digits_epochs: int = 4
    digits_train_size: int | None = None
    digits_test_size: int | None = None
    digits_restarts: int = 4
    digits_steps: int = 5
    digits_batch_size: int = 64
    digits_lr: float = 0.05
    #: the certified step's largest step (plain SGD: the others' 0.05 with momentum 0.9 moves
    #: about 0.05 / (1 − 0.9) = 0.5 per unit of gradient in a steady direction)
    digits_certified_lr: float = 0.5
    digits_width: int = 16
    digits_eval_steps: int = 10
    # seeds (--seeds overrides): 3 gives a 95% t-interval within the time budget
    seeds: int = 3
    quick_run: bool = False

    @property
    def worstclass(self) -> WorstClassSettings:
        """The worst-class part's sizes (`problems.worstclass`)."""
        return WorstClassSettings.quick() if self.quick_run else WorstClassSettings()

    @classmethod
    def full(cls) -> DemoSettings:
        return cls()

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(
            toy_iterations=10,
            toy_resolution=31,
            toy_eval_every=5,
            seeds=2,
            digits_epochs=2,
            digits_train_size=192,
            digits_test_size=96,
            digits_restarts=2,
            digits_steps=3,
            digits_eval_steps=10,
            quick_run=True,
        )


class Recording(mm.extend.Rule):
    """Wraps a rule and keeps every Direction's diagnostics (``on_direction`` sees each one)."""

    def __init__(
        self,
        rule: mm.extend.Rule,
        on_direction: Callable[[mm.extend.Direction, mm.extend.Candidates], None],
    ) -> None:
        self.rule = rule
        self.on_direction = on_direction

    def __repr__(self) -> str:
        return repr(self.rule)

    def direction(
        self,
        engine: mm.Engine,
        params: Mapping[str, Tensor],
        batch: Any,
        candidates: mm.extend.Candidates,
    ) -> mm.extend.Direction:
        d = self.rule(engine, params, batch, candidates)
        self.on_direction(d, candidates)
        return d


def negative_pairs(k: Tensor) -> int:
    """Pairs i < j with K_ij < 0 in a Gram matrix."""
    iu = torch.triu_indices(k.shape[0], k.shape[1], 1)
    return int((k[iu[0], iu[1]] < 0).sum())


def flat(vector: Mapping[str, Tensor]) -> Tensor:
    """A parameter-shaped dict as one flat float64 vector."""
    return torch.cat([v.detach().reshape(-1).double() for v in vector.values()])


def rounded(x: float | Tensor, digits: int = 6) -> float:
    """Round for summary.json (stable text, no float noise in the last bits)."""
    return float(f"{float(x):.{digits}g}")


def pct(x: float | None) -> str:
    """A fraction as a percentage ("n/a" for None)."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def strip_times(obj: Any) -> Any:
    """A copy of ``obj`` (a summary) without the wall-clock fields of `TIME_KEYS`."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k not in TIME_KEYS}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj
