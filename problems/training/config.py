"""The training recipe: `TrainConfig`, its accepted names and its validation.

Public API::

    TrainConfig(...)            validated when built; .to_dict(), TrainConfig.from_dict(data)
    upgrade_config(config)      a saved config under today's entry names
    upgrade_saved(meta, config) -> (meta, config)   a saved run description likewise
    SCHEDULES, BATCHNORM, LINE_SEARCHES   the accepted schedule, BatchNorm-policy and
                                line-search names
    TIME_FIELDS                 metrics fields that hold wall-clock measurements

The rule names come from `problems.training.rules.RULES`, the threat names (``threat``) from
`problems.threats.THREATS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minimax import checks

from ..threats import THREATS
from .rules import RULES, training_rules

__all__ = ["BATCHNORM", "LINE_SEARCHES", "SCHEDULES", "TIME_FIELDS", "TrainConfig"]

SCHEDULES: tuple[str, ...] = ("piecewise", "cosine", "constant")
BATCHNORM: tuple[str, ...] = ("per_restart", "eval")
LINE_SEARCHES: tuple[str, ...] = ("none", "armijo")

#: fields of metrics records that hold wall-clock measurements (they differ between runs)
TIME_FIELDS: frozenset[str] = frozenset({"seconds", "wall", "eval_seconds", "images_per_second"})


@dataclass
class TrainConfig:
    """The training recipe. Defaults follow Rice et al. 2020 (robust overfitting) for CIFAR-10.

    rule: ``"danskin"`` (PGD-AT: the gradient at the best restart), ``"maxloss"`` (each
        example's worst restart), ``"ddi"`` (min-norm hull of the m batch gradients) or
        ``"ddi-example"`` (per-example DDi, the exact Danskin set of the batch loss).
    restarts: m, the PGD restarts of the training attack (candidates per example).
    schedule: ``"piecewise"`` (lr ÷10 at 50% and 75% of the epochs), ``"cosine"`` or
        ``"constant"``; the learning rate is updated every step.
    eps, step_size, steps, threat: the training attack, PGD in the ``threat`` ball (a
        `problems.threats.THREATS` name) with x + δ in [0, 1].
    eval_steps, eval_restarts, eval_every, eval_examples: validation robust accuracy (PGD with
        step 2.5·eps/eval_steps) every ``eval_every`` epochs, on at most ``eval_examples`` examples.
    remeasure: re-run the attack after each step to report the fraction of steps whose batch
        robust loss went up (costs one more attack per step; not counted in ``wall``).
    amp: CUDA only: bf16 autocast and channels_last (Gram matrices and QPs stay float64).
    batchnorm: `minimax.ModuleProblem`'s BatchNorm policy (``"per_restart"`` or ``"eval"``).
    line_search: ``"none"`` (θ ← the optimizer's step) or ``"armijo"``: the certified step of
        `minimax.MinMaxOptimizer` (``step_size="armijo"``); each step's record then holds the
        accepted fraction ``t`` and the ``certified_decrease`` and ``realised_decrease``.
    """

    rule: str = "danskin"
    restarts: int = 1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "piecewise"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    threat: str = "linf"
    eval_steps: int = 20
    eval_restarts: int = 1
    eval_every: int = 1
    eval_examples: int | None = None
    augment: bool = True
    remeasure: bool = False
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    batchnorm: str = "per_restart"
    line_search: str = "none"

    def __post_init__(self) -> None:
        self.validate()  # the one validation: a TrainConfig that exists is valid

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field (run at construction)."""
        _choice("rule", RULES.canonical(self.rule), training_rules())
        _choice("schedule", self.schedule, SCHEDULES)
        THREATS.canonical(self.threat)
        _choice("batchnorm", self.batchnorm, BATCHNORM)
        _choice("line_search", self.line_search, LINE_SEARCHES)
        for name in (
            "restarts",
            "epochs",
            "batch_size",
            "eval_steps",
            "eval_restarts",
            "eval_every",
        ):
            setattr(self, name, checks.integer(name, getattr(self, name), minimum=1))
        self.steps = checks.integer("steps", self.steps, minimum=0)
        for name in ("lr", "eps", "step_size"):
            checks.real_number(name, getattr(self, name), nonnegative=True)
        for name in ("momentum", "weight_decay"):
            checks.real_number(name, getattr(self, name), nonnegative=True, below=1)
        if self.eval_examples is not None:
            self.eval_examples = checks.integer("eval_examples", self.eval_examples, minimum=1)
        if self.amp and not str(self.device).startswith("cuda"):
            raise ValueError("amp=True needs a CUDA device (device='cuda'); it is CUDA only")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (what config.json and checkpoints hold)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """The config saved by `to_dict`; unknown fields are a ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        data = upgrade_config(data)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**dict(data))


#: entries that files written before their renaming (config.json, checkpoints) hold under another
#: name: config "norm" is today's "threat", meta.model "norm" today's "normalization"
_RENAMED_CONFIG = {"norm": "threat"}
_RENAMED_MODEL = {"norm": "normalization"}


def _renamed(entries: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    out = dict(entries)
    for old, new in names.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


def upgrade_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config with its entries under today's names (``norm`` → ``threat``)."""
    return _renamed(config, _RENAMED_CONFIG)


def upgrade_saved(meta: Any, config: Any) -> tuple[Any, Any]:
    """A saved run's ``meta`` and ``config`` (config.json, a checkpoint) under today's names:
    config ``norm`` → ``threat``, ``meta["model"]`` ``norm`` → ``normalization`` (the argument of
    `problems.models.build_model`). Entries that are not mappings are returned as they are, for
    the caller's checks to refuse."""
    if isinstance(config, Mapping):
        config = upgrade_config(config)
    if isinstance(meta, Mapping) and isinstance(meta.get("model"), Mapping):
        meta = {**meta, "model": _renamed(meta["model"], _RENAMED_MODEL)}
    return meta, config


def _choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
