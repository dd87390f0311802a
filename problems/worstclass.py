"""Worst-class training on scikit-learn's 8×8 digits: min_θ max_c L_c(θ), L_c the mean
cross-entropy over the training images of class c (10 classes), on clean inputs or, with
``adversarial=True``, on PGD inputs (robust and fair).

Four rules share one model initialization, one data split and the same number of full-batch
steps (equal passes over the training data; ``budget="backward"`` instead stops every rule at the
same number of backward passes):

- ``erm``: plain ERM, the gradient of the mean loss (the reference);
- ``danskin``: the gradient of the single worst class;
- ``ddi``: DDi with a tolerance τ, the min-norm point of the hull of the τ-active classes'
  gradients; with ``certified=True`` (the default) a certified step: an Armijo search from the
  learning rate on the exact worst-class loss (one forward per trial), and τ shrinking as ‖d‖
  does (`minimax.ShrinkingTolerance`, τ_min = 1e-4);
- ``group_dro``: online Group DRO (Sagawa et al. 2020), exponentiated-gradient class weights with
  step size η (default 0.01, the paper's).

The inner max is exact (`minimax.Enumerate` over the 10 classes, one forward). DDi's direction
costs one forward and one backward over the whole batch, whatever the number of τ-active classes
(the engine's one-pass group Gram matrix), the others one backward; the certified step's trials
are forwards, counted apart. Each run reports its passes, trials, wall and CPU seconds.

Per run: the worst-class test loss and accuracy and the average test accuracy at the end; how
often the worst training class switches between steps; the fraction of steps after which the
worst-class training loss (on the same batch) went up; ‖d‖ near the end (the mean over the last
10% of steps).

Public API::

    WorstClassSettings(...), .quick()            the sizes of a run
    run_worstclass(seed, settings) -> dict       one seed, every rule (JSON-able)
    compare_worstclass(seeds, settings) -> dict  every seed, with 95% intervals and paired tests
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

import minimax as mm

from .data import digits as digits_data
from .stats import mean_interval, paired_difference
from .threats import make_perturbation

__all__ = [
    "METRICS",
    "RULES",
    "MeanLoss",
    "WorstClassSettings",
    "compare_worstclass",
    "run_worstclass",
]

RULES: tuple[str, ...] = ("erm", "danskin", "ddi", "group_dro")
#: metric name → True when higher is better
METRICS: dict[str, bool] = {
    "worst_class_test_loss": False,
    "worst_class_test_acc": True,
    "test_acc": True,
    "worst_class_train_loss": False,
    "switch_fraction": False,
    "went_up_fraction": False,
    "final_norm": False,
}


@dataclass(frozen=True)
class WorstClassSettings:
    """The sizes of a worst-class run (`quick` for tests and smoke runs; too short to learn much).

    steps: full-batch SGD steps per rule (with ``budget="backward"``: backward passes per rule);
    lr: SGD step size (no momentum), the same for every rule; hidden: MLP width;
    tolerance: DDi's τ in nats: classes within τ of the worst count as tied. A larger τ smooths
    more (fewer switches) but keeps more classes, at one backward pass each;
    certified: DDi takes the certified step (Armijo search from ``lr``, shrinking τ);
    dro_step_size: Group DRO's η (0.01 is the paper's); train_size/test_size: subsets (None: the
    whole split); adversarial: train and test on PGD inputs, L∞ radius ``eps``, ``pgd_steps``
    steps of 2.5·eps/pgd_steps; rules: a subset of `RULES`.
    """

    steps: int = 200
    lr: float = 0.3
    hidden: int = 32
    tolerance: float = 0.05
    certified: bool = True
    dro_step_size: float = 0.01
    train_size: int | None = None
    test_size: int | None = None
    budget: str = "steps"
    adversarial: bool = False
    eps: float = 0.1
    pgd_steps: int = 5
    rules: tuple[str, ...] = RULES

    @property
    def backward_budget(self) -> int | None:
        """With ``budget="backward"``, every rule stops after ``steps`` backward passes."""
        return self.steps if self.budget == "backward" else None

    @classmethod
    def quick(cls) -> WorstClassSettings:
        return cls(steps=40, train_size=400, test_size=200)

    def __post_init__(self) -> None:
        unknown = [r for r in self.rules if r not in RULES]
        if unknown or not self.rules:
            raise ValueError(f"rules must be among {', '.join(RULES)}, got {self.rules!r}")
        if self.budget not in ("steps", "backward"):
            raise ValueError(f"budget must be 'steps' or 'backward', got {self.budget!r}")
        if self.steps < 2:
            raise ValueError(f"steps must be ≥ 2, got {self.steps}")
        for name in ("lr", "dro_step_size", "eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance must be finite and ≥ 0, got {self.tolerance!r}")


class MeanLoss(mm.extend.Rule):
    """ERM on a `minimax.WorstGroupProblem`: d = ∇ mean loss = Σ_g (n_g/N) ∇L_g."""

    def direction(
        self,
        engine: mm.Engine,
        params: Mapping[str, Tensor],
        batch: Any,
        candidates: mm.extend.Candidates,
    ) -> mm.extend.Direction:
        problem = engine.problem
        if not isinstance(problem, mm.WorstGroupProblem):
            raise TypeError(f"MeanLoss needs a WorstGroupProblem, got {problem!r}")
        delta = problem.proportions(batch).unsqueeze(0)  # [1, 1, k]
        d = {k: v[0] for k, v in engine.candidate_gradients(params, batch, delta).items()}
        norm = torch.sqrt(sum(((v.double() ** 2).sum() for v in d.values()), torch.tensor(0.0)))
        weights = torch.zeros(candidates.m, dtype=torch.float64)
        return mm.extend.Direction(vector=d, weights=weights, norm=norm, rule=repr(self))


def _rule(name: str, s: WorstClassSettings) -> mm.extend.Rule:
    if name == "erm":
        return MeanLoss()
    if name == "danskin":
        return mm.Danskin()
    if name == "ddi":
        if s.certified and s.tolerance > 0:
            minimum = min(1e-4, s.tolerance)
            return mm.DDi(tolerance=mm.ShrinkingTolerance(s.tolerance, minimum=minimum))
        return mm.DDi(tolerance=s.tolerance)
    return mm.GroupDRO(step_size=s.dro_step_size)


def _model(hidden: int, seed: int) -> nn.Module:
    """A 64-hidden-10 tanh MLP, initialized from ``seed`` (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10))


def _attack(s: WorstClassSettings, model: nn.Module) -> tuple[mm.ModuleProblem, mm.PGD]:
    problem = mm.ModuleProblem(model, perturbation=make_perturbation("linf", s.eps))
    return problem, mm.PGD(steps=s.pgd_steps, step_size=2.5 * s.eps / s.pgd_steps, seed=0)


def _per_class(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float]:
    """Per-class mean loss [10] and accuracy [10] (NaN for absent classes), overall accuracy."""
    with torch.no_grad():
        out = model(x)
        loss = nn.functional.cross_entropy(out, y, reduction="none").double()
        right = (out.argmax(-1) == y).double()
    counts = torch.bincount(y, minlength=10).double()
    mean_loss = torch.zeros(10, dtype=torch.float64).index_add(0, y, loss) / counts
    acc = torch.zeros(10, dtype=torch.float64).index_add(0, y, right) / counts
    return mean_loss, acc, float(right.mean())


def _evaluate(s: WorstClassSettings, model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    if s.adversarial:
        problem, pgd = _attack(s, model)
        x = mm.extend.adversarial_batch(problem, pgd, (x, y, y))[0]
    loss, acc, overall = _per_class(model, x, y)
    present = ~torch.isnan(loss)
    return {
        "worst_class_test_loss": float(loss[present].max()),
        "worst_class_test_acc": float(acc[present].min()),
        "test_acc": overall,
    }


def _worst_loss(problem: mm.WorstGroupProblem, batch: Any) -> float:
    """The largest group loss on ``batch`` at the current θ (no passes counted)."""
    return float(problem.group_losses(problem.parameters(), batch).nan_to_num(-math.inf).max())


def _train_one(
    name: str, s: WorstClassSettings, seed: int, train: tuple[Tensor, Tensor]
) -> tuple[nn.Module, dict[str, Any]]:
    """Train one rule; per-step worst class, its loss before/after the step and ‖d‖."""
    model = _model(s.hidden, seed)
    problem = mm.WorstGroupProblem.from_module(model, 10)
    rule, inner = _rule(name, s), mm.Enumerate()
    search = mm.Armijo() if name == "ddi" and s.certified else None
    optimizer = mm.MinMaxOptimizer(
        problem,
        torch.optim.SGD(list(problem.parameters().values()), lr=s.lr),
        inner,
        rule,
        step_size=search,
    )
    passes = optimizer.engine.passes
    attack = _attack(s, model) if s.adversarial else None
    x, y = train
    worst, before, norms = [], [], []
    trials = 0
    after: list[float] = []  # the worst-class loss on the step's batch after the step
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(s.steps):
        if s.budget == "backward" and passes.backward >= s.steps:
            break
        batch = (x, y, y)
        if attack is not None:
            batch = mm.extend.adversarial_batch(*attack, batch)
        report = optimizer.step(batch)  # the one "apply a direction" (minimax.backward)
        cands = report.candidates
        assert cands is not None
        top = int(cands.values[:, 0].argmax())
        worst.append(int(cands.deltas[top, 0].argmax()))
        before.append(float(cands.values[top, 0]))
        if attack is None and len(before) > 1:
            after.append(before[-1])  # same batch: the previous step's "after" is this "before"
        last = len(before) == s.steps or (s.budget == "backward" and passes.backward >= s.steps)
        if attack is not None or last:
            after.append(_worst_loss(problem, batch))
        norms.append(report.norm)
        trials += report.trials or 0
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = len(before)
    tail = max(1, steps // 10)
    record = {
        "worst_class_train_loss": after[-1],
        "switch_fraction": sum(a != b for a, b in itertools.pairwise(worst)) / max(1, steps - 1),
        "went_up_fraction": sum(b > a for a, b in zip(before, after)) / steps,
        "final_norm": sum(norms[-tail:]) / tail,
        "steps": steps,
        "forward": passes.forward,
        "backward": passes.backward,
        "trials": trials,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "rule": repr(rule),
    }
    return model, record


def run_worstclass(seed: int, settings: WorstClassSettings | None = None) -> dict[str, Any]:
    """Every rule of ``settings`` on one seed (the data split and the initialization).

    Returns ``{"seed", "settings", "train_examples", "test_examples", "rules": {name: metrics}}``,
    JSON-able; `METRICS` lists the compared metrics (also ``forward``, ``backward``, ``seconds``).
    """
    s = settings or WorstClassSettings()
    data = digits_data.load(seed=seed, train_size=s.train_size, test_size=s.test_size)
    train = data.train
    x_test, y_test = data.test
    rules: dict[str, Any] = {}
    for name in s.rules:
        model, record = _train_one(name, s, seed, train)
        rules[name] = {**_evaluate(s, model, x_test, y_test), **record}
    return {
        "seed": int(seed),
        "settings": asdict(s),
        "train_examples": len(data.y_train),
        "test_examples": len(data.y_test),
        "rules": rules,
    }


def compare_worstclass(
    seeds: Sequence[int],
    settings: WorstClassSettings | None = None,
    on_seed: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """`run_worstclass` on every seed; per rule and metric the mean with a 95% t-interval, and
    per other rule the paired differences DDi − other with a paired t-test (scipy.stats).

    The verdict is "no significant difference" unless the 95% interval of the paired
    difference excludes 0 (and always with one seed). ``on_seed(seed)`` is called after each
    seed (a progress bar).
    """
    s = settings or WorstClassSettings()
    if "ddi" not in s.rules:
        s = replace(s, rules=(*s.rules, "ddi"))
    runs = []
    for seed in seeds:
        runs.append(run_worstclass(seed, s))
        if on_seed is not None:
            on_seed(seed)
    if not runs:
        raise ValueError("seeds is empty: pass at least one seed")
    per_rule = {
        name: {m: mean_interval([r["rules"][name][m] for r in runs]) for m in METRICS}
        for name in s.rules
    }
    paired = {
        name: {
            m: paired_difference(
                [r["rules"]["ddi"][m] for r in runs], [r["rules"][name][m] for r in runs], better
            )
            for m, better in METRICS.items()
        }
        for name in s.rules
        if name != "ddi"
    }
    return {
        "seeds": list(seeds),
        "settings": asdict(s),
        "runs": runs,
        "rules": per_rule,
        "paired": paired,
    }
