"""The outer step: candidates → direction → ``.grad`` → any ``torch.optim`` optimizer."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from minimax import checks
from minimax.distributed import LOCAL, Communicator
from minimax.engine import Engine, as_engine
from minimax.inner.base import Candidates, InnerSolver
from minimax.nonfinite import NonFiniteError, check_state
from minimax.problem import Batch, Problem
from minimax.rules import Direction, Rule

__all__ = ["MinMaxOptimizer", "StepReport", "apply_direction", "descent_direction"]


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


@dataclass
class StepReport:
    """What one outer step saw and did.

    robust_loss: mean_b max_i g at the candidates, before the step (float).
    robust_loss_after: the same after the step, re-measured by running the inner solver again
        from the same random starts (None unless ``remeasure=True``).
    norm, certificate, weights: from the `Direction`.
    forward, backward: passes spent by the step (units of one pass over B examples).
    seconds: wall time of the step (without the re-measure).
    candidates: the `Candidates` the direction was built from (None for a skipped step).
    """

    robust_loss: float
    norm: float
    certificate: float | None
    weights: Tensor
    forward: int
    backward: int
    seconds: float
    robust_loss_after: float | None = None
    kkt: float | None = None
    skipped: bool = False
    candidates: Candidates | None = field(default=None, repr=False, compare=False)

    @property
    def went_up(self) -> bool | None:
        if self.robust_loss_after is None:
            return None
        return self.robust_loss_after > self.robust_loss


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
        self.steps = 0
        self.skipped_steps = 0

    def __repr__(self) -> str:
        return (
            f"MinMaxOptimizer({type(self.optimizer).__name__}, inner={self.inner!r}, "
            f"rule={self.rule!r})"
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
        self.optimizer.step()
        seconds = time.perf_counter() - t0
        f1, b1 = engine.passes.snapshot()
        after = None
        if self.remeasure:
            after = self._remeasure(batch, start_state)
        self.steps += 1
        return StepReport(
            robust_loss=self._robust_loss(candidates),
            norm=float(direction.norm),
            certificate=None if direction.certificate is None else float(direction.certificate),
            weights=direction.weights.detach().cpu(),
            forward=f1 - f0,
            backward=b1 - b0,
            seconds=seconds,
            robust_loss_after=after,
            kkt=None if direction.kkt is None else float(direction.kkt),
            candidates=candidates,
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

    def _remeasure(self, batch: Batch, start_state: Tensor) -> float:
        """Robust loss after the step, from the same random starts (passes not counted)."""
        gen = self.generator
        end_state = gen.get_state()
        gen.set_state(start_state)
        with self.engine.uncounted():
            cands = self.inner(self.engine, self.problem.parameters(), batch, generator=gen)
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
        passes = _passes(state.get("passes", self.engine.passes.snapshot()))
        generator = state.get("generator")
        if generator is not None:
            _check_generator_state(generator, self.generator)
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


def _check_generator_state(state: object, generator: torch.Generator) -> None:
    """A ValueError unless ``state`` is a state of a generator like ``generator`` (tried on a
    scratch generator of its device)."""
    if not (isinstance(state, Tensor) and state.dtype == torch.uint8 and state.ndim == 1):
        raise ValueError("state['generator'] must be a generator state (a uint8 tensor [n])")
    try:
        torch.Generator(generator.device).set_state(state)
    except RuntimeError as error:
        raise ValueError(f"state['generator'] does not fit this generator: {error}") from None


def _passes(value: object) -> tuple[int, int]:
    """The pass counts ``[forward, backward]`` of a state, checked."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"state['passes'] must be [forward, backward], got {value!r}")
    forward, backward = (checks.integer("state['passes']", v, minimum=0) for v in value)
    return forward, backward
