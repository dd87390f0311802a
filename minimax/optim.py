"""The outer step: candidates → direction → ``.grad`` → any ``torch.optim`` optimizer.

Public API::

    descent_direction(problem, params, batch, inner, rule, *, generator=None, engine=None)
        -> (Direction, Candidates)
    apply_direction(engine, params, batch, direction, candidates, *, before=None,
                    update_statistics=True)      the one "apply a direction" (into ``.grad``)
    check_data_parallel(engine, rule)            refuse a rule without a data-parallel form
    MinMaxOptimizer(problem, optimizer, inner, rule, *, remeasure=False, generator=None,
                    nonfinite="raise", engine=None, step_size=None)
        .step(batch) -> StepReport, .state_dict(), .load_state_dict(state)

The report of a step is `minimax.step_report.StepReport`; the certified step (``step_size``)
is `minimax.certified_step`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from minimax import checks
from minimax.certified_step import certified_step, step_size_option
from minimax.distributed import LOCAL, Communicator
from minimax.engine import Engine, as_engine
from minimax.inner.base import Candidates, InnerSolver
from minimax.linesearch import Armijo
from minimax.nonfinite import NonFiniteError, check_state
from minimax.problem import Batch, Problem
from minimax.rules import Direction, Rule
from minimax.step_report import StepReport

__all__ = ["MinMaxOptimizer", "apply_direction", "check_data_parallel", "descent_direction"]


def _engine(problem: Problem, engine: Engine | None) -> Engine:
    """``engine`` (which must evaluate ``problem``), or the problem's default engine."""
    if engine is None:
        return as_engine(problem)
    if not isinstance(engine, Engine):
        raise TypeError(f"engine must be a minimax.Engine, got {type(engine).__name__}")
    if engine.problem is not problem:
        raise ValueError("the engine evaluates another problem: build it as Engine(problem, ...)")
    return engine


def descent_direction(
    problem: Problem,
    params: Mapping[str, Tensor] | None,
    batch: Batch,
    inner: InnerSolver,
    rule: Rule | str,
    *,
    generator: torch.Generator | None = None,
    engine: Engine | None = None,
) -> tuple[Direction, Candidates]:
    """Find candidates with ``inner`` at θ = params (default: the problem's), then apply ``rule``.

    Returns the `Direction` d (descend along −d) and the `Candidates` it was built from. The
    ``engine`` (default: the problem's, `minimax.extend.engine_of`) evaluates and differentiates g;
    where the rule's gradients are at the scored candidates (`Rule.need`) it takes them by the
    backward of the inner solver's scoring forward, which saves that forward
    (docs/architecture.md).
    """
    rule = checks.step_pieces(problem, inner, rule)
    engine = _engine(problem, engine)
    check_data_parallel(engine, rule)
    params = problem.parameters() if params is None else params
    _check_params(params)
    with engine.step(rule.need, inner.restarts):
        candidates = inner(engine, params, batch, generator=generator)
        direction = rule(engine, params, batch, candidates)
    return direction, candidates


def check_data_parallel(engine: Engine, rule: Rule) -> None:
    """Refuse a rule without a data-parallel form on an engine with a communicator."""
    if engine.communicator is not LOCAL and not getattr(rule, "data_parallel", False):
        raise ValueError(
            f"{rule!r} has no data-parallel form: use Danskin, MaxLoss or DDi(per_example=False)"
        )


def apply_direction(
    engine: Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    direction: Direction,
    candidates: Candidates,
    *,
    before: Callable[[], None] | None = None,
    update_statistics: bool = True,
) -> None:
    """The one "apply a direction": refuse a non-finite d or robust loss (`NonFiniteError`,
    nothing touched), run ``before`` (e.g. the optimizer's ``zero_grad``), add d to each
    parameter's ``.grad`` (like ``loss.backward()``), then update running statistics once from
    each example's best candidate (and synchronise them over ranks)."""
    engine.refuse_nonfinite(direction.vector, candidates.values, rule=direction.rule)
    if before is not None:
        before()
    for name, p in params.items():
        d = direction.vector[name].detach().to(p.dtype)
        p.grad = d.clone() if p.grad is None else p.grad + d
    if update_statistics:
        engine.update_statistics(batch, candidates.best_deltas())


def _check_params(params: Mapping[str, Tensor]) -> None:
    if not params:
        raise ValueError("params is empty: nothing to optimize")
    devices = {p.device for p in params.values()}
    dtypes = {p.dtype for p in params.values()}
    if len(devices) > 1:
        raise ValueError(f"params live on several devices {sorted(map(str, devices))}: use one")
    if len(dtypes) > 1:
        raise ValueError(f"params have several dtypes {sorted(map(str, dtypes))}: use one")


class MinMaxOptimizer:
    """Wraps a ``torch.optim`` optimizer for min_θ mean_b max_δ g(θ, δ; batch).

    ``step(batch)`` finds candidates with ``inner``, forms the rule's direction d, writes it into
    each parameter's ``.grad`` and calls ``optimizer.step()`` (so θ ← θ − lr·d for SGD; momentum,
    weight decay and LR schedulers behave as usual). With running statistics (BatchNorm) they are
    updated once per step from one no-grad forward at each example's worst candidate.

    Args:
        problem: the min-max problem; its ``parameters()`` must be the optimizer's parameters.
        optimizer: any ``torch.optim.Optimizer`` over those parameters.
        inner: the inner solver (e.g. ``PGD(10, 2/255, restarts=10)``).
        rule: the direction rule (``Danskin()``, ``MaxLoss()``, ``DDi()``).
        remeasure: after each step, run the inner solver again from the same random starts and
            report the robust loss after the step.
        nonfinite: what a NaN or Inf in the direction, the robust loss or the objective values
            does. ``"raise"`` (default): `minimax.NonFiniteError`, with the parameters, their
            ``.grad``, the running statistics and the optimizer state (momentum, step counts)
            left bitwise as they were. ``"skip"``: the step is skipped (nothing changes, as with
            AMP's GradScaler) and counted in ``skipped_steps`` (kept in `state_dict`). The check
            is one fused ``isfinite`` over d and the values: one host sync per step. The inner
            solver's generator has advanced either way.

        engine: the execution engine (`minimax.Engine(problem, ...)`: stacking, Gramian mode,
            scoring-graph reuse, memory budget, data parallelism); default: the problem's.
        step_size: None (default): θ ← the optimizer's step, as is. ``"armijo"`` (`Armijo()`)
            or an `Armijo`: a certified step. The optimizer's step gives the update
            u = θ₀ − θ₁; the search keeps the largest t ∈ {1, β, β², …} with
            R(θ₀ − t·u) ≤ R₀ + c·t·s, R the robust objective measured by re-running the inner
            solver at the trial point from the step's random starts (exact for `Enumerate` and
            `Grid`, measured, not proven, for attacks), R₀ the step's robust loss. The slope s:
            where u = η·d (plain SGD, detected numerically) and the rule gave a certificate,
            s = η·certificate (for DDi ≤ −η‖d‖²: a decrease of R is then guaranteed for an exact
            inner max); otherwise (momentum, Adam, weight decay, several learning rates)
            s = −⟨d, u⟩: the search scales the optimizer's update and asks R to fall by c·t
            times its first-order decrease along d, a measured, not certified, test. No trial
            passing (or s ≥ 0): θ and the optimizer state are restored bitwise and the step is
            a null step (still counted in ``steps``). Each trial costs one run of the inner
            solver (one forward for a finite max); its passes are reported apart
            (`StepReport.trial_forward`). With an accepted t < 1, the optimizer's state (e.g.
            momentum) is the one its full step left. Running statistics (BatchNorm) are updated
            once per step as without a search, a null step included.

    ``step`` is `minimax.backward` (the same code: `apply_direction`) after the optimizer's
    ``zero_grad(set_to_none=True)``, then ``optimizer.step()``.

    Data parallel: give it an engine with a communicator (`minimax.distributed.data_parallel`);
    the robust loss, ‖d‖, the certificate and the weights are then global, and every rank takes
    the same step.
    """

    def __init__(
        self,
        problem: Problem,
        optimizer: torch.optim.Optimizer,
        inner: InnerSolver,
        rule: Rule | str,
        *,
        remeasure: bool = False,
        generator: torch.Generator | None = None,
        nonfinite: str = "raise",
        engine: Engine | None = None,
        step_size: str | Armijo | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        for group in optimizer.param_groups:
            lr = group.get("lr", 0.0)
            if isinstance(lr, Tensor) and lr.ndim == 0 and lr.is_floating_point():
                lr = float(lr)
            checks.real_number("lr", lr, nonnegative=True)
        the_rule = checks.step_pieces(problem, inner, rule)
        params = problem.parameters()
        _check_params(params)
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [k for k, p in params.items() if id(p) not in in_optimizer]
        if missing:
            raise ValueError(
                f"parameters {missing[:5]} of the problem are not in the optimizer: build it from "
                "problem.parameters().values()"
            )
        self.problem = problem
        self.rule = the_rule
        self.engine = _engine(problem, engine)
        self.optimizer = optimizer
        self.inner = inner
        self.remeasure = remeasure
        self.generator = generator if generator is not None else inner.generator
        self.nonfinite = checks.choice("nonfinite", nonfinite, ("raise", "skip"))
        self.step_size = step_size_option(step_size)
        self.steps = 0
        self.skipped_steps = 0

    def __repr__(self) -> str:
        extra = "" if self.step_size is None else f", step_size={self.step_size!r}"
        return (
            f"MinMaxOptimizer({type(self.optimizer).__name__}, inner={self.inner!r}, "
            f"rule={self.rule!r}{extra})"
        )

    def step(self, batch: Batch) -> StepReport:
        """One outer step on ``batch``; returns its `StepReport`."""
        engine = self.engine
        params = self.problem.parameters()
        start_state = self.generator.get_state()
        f0, b0 = engine.passes.snapshot()
        t0 = time.perf_counter()
        try:
            direction, candidates = descent_direction(
                self.problem,
                params,
                batch,
                self.inner,
                self.rule,
                generator=self.generator,
                engine=engine,
            )
            zero = lambda: self.optimizer.zero_grad(set_to_none=True)  # noqa: E731
            apply_direction(engine, params, batch, direction, candidates, before=zero)
        except NonFiniteError:
            if self.nonfinite == "raise":
                raise
            return self._skipped(t0, f0, b0)
        robust_loss = self._robust_loss(candidates)
        search: dict[str, Any] = {}
        if self.step_size is None:
            self.optimizer.step()
        else:
            search = certified_step(
                self.optimizer,
                params,
                self.step_size,
                direction,
                robust_loss,
                lambda: self._remeasure(batch, start_state, counted=True),
                engine.passes,
            )
        seconds = time.perf_counter() - t0
        f1, b1 = engine.passes.snapshot()
        after = search.pop("after", None)
        if self.remeasure and after is None:
            after = self._remeasure(batch, start_state)
        self.steps += 1
        return StepReport(
            robust_loss=robust_loss,
            norm=float(direction.norm),
            certificate=None if direction.certificate is None else float(direction.certificate),
            weights=direction.weights.detach().cpu(),
            forward=f1 - f0,
            backward=b1 - b0,
            seconds=seconds,
            robust_loss_after=after,
            kkt=None if direction.kkt is None else float(direction.kkt),
            candidates=candidates,
            **search,
        )

    @property
    def engine(self) -> Engine:
        """The execution engine of the steps (settable, e.g. to a data-parallel one)."""
        return self._engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        engine = _engine(self.problem, engine)
        check_data_parallel(engine, self.rule)
        self._engine = engine

    @property
    def communicator(self) -> Communicator:
        """The engine's communicator (`minimax.distributed`): LOCAL unless data-parallel."""
        return self.engine.communicator

    def _robust_loss(self, candidates: Candidates) -> float:
        """mean_b max_i values over the global batch (all ranks' shards)."""
        loss = {"loss": candidates.robust_loss()}
        return float(self.engine.mean(loss, candidates.batch_size)["loss"])

    def _skipped(self, t0: float, f0: int, b0: int) -> StepReport:
        """The report of a step skipped for a non-finite value (``nonfinite="skip"``)."""
        self.skipped_steps += 1
        f1, b1 = self.engine.passes.snapshot()
        nan = float("nan")
        return StepReport(
            robust_loss=nan,
            norm=nan,
            certificate=None,
            weights=torch.empty(0, dtype=torch.float64),
            forward=f1 - f0,
            backward=b1 - b0,
            seconds=time.perf_counter() - t0,
            skipped=True,
        )

    def _remeasure(self, batch: Batch, start_state: Tensor, *, counted: bool = False) -> float:
        """Robust loss after the step, from the same random starts (passes not counted unless
        ``counted``: the caller then reads and restores the counter)."""
        gen = self.generator
        end_state = gen.get_state()
        gen.set_state(start_state)
        try:
            if counted:
                cands = self.inner(self.engine, self.problem.parameters(), batch, generator=gen)
            else:
                with self.engine.uncounted():
                    cands = self.inner(self.engine, self.problem.parameters(), batch, generator=gen)
        except NonFiniteError:
            return math.nan  # a trial with a non-finite objective is never accepted
        finally:
            gen.set_state(end_state)
        return self._robust_loss(cands)

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on besides θ: the torch optimizer's state, the step
        counts (taken and skipped), the inner solver's generator state, the rule's state
        (`Rule.state_dict`, e.g. Group DRO's weights) and the pass counter ``[forward,
        backward]``. Tensors and plain containers only (``torch.load(weights_only=True)``)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
            "generator": self.generator.get_state(),
            "rule": self.rule.state_dict(),
            "passes": list(self.engine.passes.snapshot()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict` (``optimizer`` and ``steps`` required; a part absent from an
        older state is left as it is). A malformed or non-finite state is refused before
        anything changes."""
        if not isinstance(state, Mapping):
            raise TypeError(f"a MinMaxOptimizer state must be a dict, got {type(state).__name__}")
        missing = {"optimizer", "steps"} - set(state)
        unknown = set(state) - _STATE_KEYS
        if missing or unknown:
            raise ValueError(
                f"not a MinMaxOptimizer state_dict: missing {sorted(missing)}, unknown "
                f"{sorted(unknown)}"
            )
        check_state(state, what="the MinMaxOptimizer state_dict")
        steps = checks.integer("state['steps']", state["steps"], minimum=0, maximum=2**62)
        skipped = checks.integer(
            "state['skipped_steps']", state.get("skipped_steps", 0), minimum=0, maximum=2**62
        )
        passes = checks.pass_counts(
            "state['passes']", state.get("passes", self.engine.passes.snapshot())
        )
        generator = state.get("generator")
        if generator is not None:
            checks.generator_state("state['generator']", generator, self.generator)
        previous = self.rule.state_dict()
        if "rule" in state:
            self.rule.load_state_dict(state["rule"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, RuntimeError, KeyError, TypeError) as error:
            self.rule.load_state_dict(previous)
            raise ValueError(f"state['optimizer'] does not fit this optimizer: {error}") from None
        if generator is not None:
            self.generator.set_state(generator)
        self.steps, self.skipped_steps = steps, skipped
        self.engine.passes.restore(passes)


_STATE_KEYS = frozenset({"optimizer", "steps", "skipped_steps", "generator", "rule", "passes"})
