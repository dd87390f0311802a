"""Training one rule on a worst-group data set, min_θ max_g L_g(θ), with the measurements the
comparison (`problems.worstgroup.compare`) reports.

Rules (every one an outer rule of `minimax.MinMaxOptimizer` over `minimax.Enumerate`'s exact
group losses, plain SGD at the run's learning rate):

- ``erm``: the gradient of the mean loss (`problems.worstclass.MeanLoss`);
- ``danskin``: the gradient of the single worst group (`minimax.Danskin`);
- ``group_dro``: online Group DRO (`minimax.GroupDRO`), parameter η, its exponentiated-gradient
  step on the group weights;
- ``ddi``: DDi with a shrinking tolerance (`minimax.ShrinkingTolerance`, parameter τ₀, τ_min =
  1e-4) and the certified Armijo step (`minimax.Armijo`, trials from the learning rate).

Batches: ``batch_size=None`` trains on the whole training part at every step (full batch);
otherwise on minibatches of a per-epoch permutation drawn from the seed (the same batches for
every rule of a seed). Either way a run takes ``passes`` epochs, so every rule of a run sees the
same number of examples.

Public API::

    RULES, RunSpec(...)                       the rules; one run's sizes
    group_metrics(model, part, num_groups) -> {"worst_group_loss", "worst_group_acc", "acc"}
    train_rule(data, spec, rule, param, seed, *, evaluate_on="test") -> (model, record)

Clocks: ``cpu_seconds`` (process CPU time, every thread) and ``seconds`` (wall) count the
steps only; the measurements in between (the curve, whether the objective went up) are outside
both clocks and outside the pass counts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import minimax as mm

from ..data.groups import WorstGroupData
from ..worstclass import MeanLoss
from .models import build_worstgroup_model

__all__ = ["RULES", "RunSpec", "group_metrics", "train_rule"]

RULES: tuple[str, ...] = ("erm", "danskin", "group_dro", "ddi")
#: DDi's tolerance floor τ_min
TAU_MIN = 1e-4


@dataclass(frozen=True)
class RunSpec:
    """One run's sizes: ``model`` (a `WORSTGROUP_MODELS` name, with ``model_options``),
    ``passes`` epochs, ``batch_size`` (None: full batch), ``lr`` the SGD step (DDi's longest
    trial), ``points`` measurements of the curve (spread evenly over the steps)."""

    model: str
    passes: int
    batch_size: int | None
    lr: float
    points: int = 20
    model_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.passes < 1:
            raise ValueError(f"passes must be ≥ 1, got {self.passes}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1 or None (full batch), got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {self.lr!r}")
        if self.points < 2:
            raise ValueError(f"points must be ≥ 2, got {self.points}")

    @property
    def mode(self) -> str:
        """``"full"`` or ``"minibatch"``."""
        return "full" if self.batch_size is None else "minibatch"


def group_metrics(
    model: nn.Module, part: tuple[Tensor, Tensor, Tensor], num_groups: int
) -> dict[str, float]:
    """Worst-group mean cross-entropy and accuracy over the groups present in ``part`` = (x [n,
    ...], y [n], group [n]), and the accuracy over all n examples."""
    x, y, g = part
    with torch.no_grad():
        out = model(x)
        loss = nn.functional.cross_entropy(out, y, reduction="none").double()
        right = (out.argmax(-1) == y).double()
    counts = torch.bincount(g, minlength=num_groups).double()
    present = counts > 0
    mean_loss = torch.zeros(num_groups, dtype=torch.float64).index_add(0, g, loss)[present]
    acc = torch.zeros(num_groups, dtype=torch.float64).index_add(0, g, right)[present]
    return {
        "worst_group_loss": float((mean_loss / counts[present]).max()),
        "worst_group_acc": float((acc / counts[present]).min()),
        "acc": float(right.mean()),
    }


def _rule(name: str, param: float | None) -> mm.extend.Rule:
    if name == "erm":
        return MeanLoss()
    if name == "danskin":
        return mm.Danskin()
    if param is None:
        raise ValueError(f"rule {name!r} needs its parameter (η for group_dro, τ₀ for ddi)")
    if name == "group_dro":
        return mm.GroupDRO(step_size=param)
    if name == "ddi":
        return mm.DDi(tolerance=mm.ShrinkingTolerance(param, minimum=min(TAU_MIN, param)))
    raise ValueError(f"unknown rule {name!r}: choose one of {', '.join(RULES)}")


def _batches(n: int, spec: RunSpec, seed: int) -> list[Tensor | None]:
    """Index sets of every step (None: the whole part), the same for every rule of a seed."""
    if spec.batch_size is None:
        return [None] * spec.passes
    generator = torch.Generator().manual_seed(int(seed))
    out: list[Tensor | None] = []
    for _ in range(spec.passes):
        out.extend(torch.randperm(n, generator=generator).split(spec.batch_size))
    return out


def _worst_loss(problem: mm.WorstGroupProblem, batch: Any) -> float:
    """The largest group loss on ``batch`` at the current θ (no passes counted)."""
    return float(problem.group_losses(problem.parameters(), batch).nan_to_num(-math.inf).max())


# long: one loop that keeps the clocks, the pass counts and every per-step measurement together
def train_rule(
    data: WorstGroupData,
    spec: RunSpec,
    rule: str,
    param: float | None,
    seed: int,
    *,
    evaluate_on: str = "test",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``rule`` (parameter ``param``: η or τ₀) from the initialization of ``seed``.

    The record holds: ``curve`` (``points`` rows [epochs, cpu_seconds, worst-group training
    loss on the whole training part, worst-group accuracy on ``evaluate_on``]), ``final_norm``
    (mean ‖d‖ over the last 10% of steps), ``went_up_fraction`` (steps after which the largest
    group loss of the step's batch rose), ``active_groups`` (groups with positive weight in d,
    mean per step), ``steps``, ``forward``, ``backward``, ``trial_forward``, ``cpu_seconds``,
    ``seconds``; ``evaluate_on="val"`` keeps the test part out of everything."""
    model = build_worstgroup_model(spec.model, data, seed=seed, **dict(spec.model_options))
    problem = mm.WorstGroupProblem.from_module(model, data.num_groups)
    direction = _rule(rule, param)
    optimizer = mm.MinMaxOptimizer(
        problem,
        torch.optim.SGD(list(problem.parameters().values()), lr=spec.lr),
        mm.Enumerate(),
        direction,
        step_size=mm.Armijo() if rule == "ddi" else None,
    )
    x, y, g = data.train
    plan = _batches(len(y), spec, seed)
    marks = {round(i * len(plan) / (spec.points - 1)) for i in range(spec.points)}
    held_out = data.part(evaluate_on)
    curve: list[list[float]] = []
    norms: list[float] = []
    went_up = active = trial_forward = 0
    before: float | None = None  # full batch: the last step's worst-group loss, not yet judged
    cpu = wall = 0.0
    for step in range(len(plan) + 1):
        if step in marks:
            train_worst = group_metrics(model, data.train, data.num_groups)["worst_group_loss"]
            held = group_metrics(model, held_out, data.num_groups)["worst_group_acc"]
            curve.append([step * spec.passes / len(plan), cpu, train_worst, held])
        if step == len(plan):
            break
        index = plan[step]
        c0, t0 = time.process_time(), time.perf_counter()
        batch = (x, y, g) if index is None else (x[index], y[index], g[index])
        report = optimizer.step(batch)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - t0
        if index is None and before is not None:
            went_up += report.robust_loss > before  # the same batch: the last step's "after"
        before = report.robust_loss
        after = report.robust_loss_after
        if after is None and (index is not None or step == len(plan) - 1):
            after = _worst_loss(problem, batch)
        if after is not None:
            went_up += after > report.robust_loss
            before = None  # counted
        active += int((report.weights > 0).sum()) if rule == "ddi" else 0
        norms.append(report.norm)
        trial_forward += report.trial_forward or 0
    tail = max(1, len(norms) // 10)
    passes = optimizer.engine.passes
    record = {
        "curve": curve,
        "final_norm": sum(norms[-tail:]) / tail,
        "went_up_fraction": went_up / len(plan),
        "active_groups": active / len(plan) if rule == "ddi" else None,
        "steps": len(plan),
        "forward": passes.forward,
        "backward": passes.backward,
        "trial_forward": trial_forward,
        "cpu_seconds": round(cpu, 3),
        "seconds": round(wall, 3),
        "rule": repr(direction),
    }
    return model, record
