"""The outer step: candidates → direction → ``.grad`` → any ``torch.optim`` optimizer."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from minimax import checks
from minimax.distributed import Communicator
from minimax.inner.base import Candidates, InnerSolver
from minimax.nonfinite import NonFiniteError, check_direction, check_state
from minimax.problem import Batch, Problem
from minimax.rules import Direction, Rule

__all__ = ["MinMaxOptimizer", "StepReport", "descent_direction"]


def descent_direction(
    problem: Problem,
    params: Mapping[str, Tensor] | None,
    batch: Batch,
    inner: InnerSolver,
    rule: Rule | str,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Direction, Candidates]:
    """Find candidates with ``inner`` at θ = params (default: the problem's), then apply ``rule``.

    Returns the `Direction` d (descend along −d) and the `Candidates` it was built from. Where
    the rule asks (`Rule.wants_scoring_graph`), its gradients come from the backward of the inner
    solver's scoring forward, which saves that forward (see docs/architecture.md).
    """
    the_rule = checks.step_pieces(problem, inner, rule)
    params = problem.parameters() if params is None else params
    _check_params(params)
    keep = the_rule.wants_scoring_graph(inner.restarts)
    candidates = inner(problem, params, batch, generator=generator, keep_graph=keep)
    return the_rule(problem, params, batch, candidates), candidates


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

    Data parallel: give it a rule from `minimax.distributed.data_parallel`; the robust loss,
    ‖d‖, the certificate and the weights are then global, and every rank takes the same step.
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
        self.optimizer = optimizer
        self.inner = inner
        self.rule = the_rule
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
        problem = self.problem
        params = problem.parameters()
        start_state = self.generator.get_state()
        f0, b0 = problem.passes.snapshot()
        t0 = time.perf_counter()
        try:
            direction, candidates = descent_direction(
                problem, params, batch, self.inner, self.rule, generator=self.generator
            )
            check_direction(direction.vector, candidates.values, rule=direction.rule)
        except NonFiniteError:
            if self.nonfinite == "raise":
                raise
            return self._skipped(t0, f0, b0)
        self.optimizer.zero_grad(set_to_none=True)
        for name, p in params.items():
            p.grad = direction.vector[name].detach().to(p.dtype)
        if problem.has_running_statistics:
            problem.update_statistics(batch, candidates.best_deltas())
            self.communicator.synchronize_statistics(getattr(problem, "model", None))
        self.optimizer.step()
        seconds = time.perf_counter() - t0
        f1, b1 = problem.passes.snapshot()
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
        )

    @property
    def communicator(self) -> Communicator:
        """The rule's communicator (`minimax.distributed`): LOCAL unless data-parallel."""
        return self.rule.communicator

    def _robust_loss(self, candidates: Candidates) -> float:
        """mean_b max_i values over the global batch (all ranks' shards)."""
        loss = {"loss": candidates.robust_loss()}
        return float(self.communicator.mean(loss, candidates.batch_size)["loss"])

    def _skipped(self, t0: float, f0: int, b0: int) -> StepReport:
        """The report of a step skipped for a non-finite value (``nonfinite="skip"``)."""
        self.skipped_steps += 1
        f1, b1 = self.problem.passes.snapshot()
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
        with self.problem.passes.paused():
            cands = self.inner(self.problem, self.problem.parameters(), batch, generator=gen)
        gen.set_state(end_state)
        return self._robust_loss(cands)

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state, the step counts (taken and skipped) and the inner solver's generator
        state."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict`; a malformed or non-finite state is refused (ValueError) before
        anything changes."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a MinMaxOptimizer state_dict, got {type(state)}")
        missing = {"optimizer", "steps"} - set(state)
        if missing:
            raise ValueError(f"not a MinMaxOptimizer state_dict: missing {sorted(missing)}")
        check_state(state, what="the MinMaxOptimizer state_dict")
        steps = checks.integer("state['steps']", state["steps"], minimum=0, maximum=2**62)
        skipped = checks.integer(
            "state['skipped_steps']", state.get("skipped_steps", 0), minimum=0, maximum=2**62
        )
        gen = state.get("generator")
        current = self.generator.get_state()
        if gen is not None and not (
            isinstance(gen, Tensor) and gen.dtype == current.dtype and gen.shape == current.shape
        ):
            raise ValueError(
                "state['generator'] must be a torch.Generator state (get_state()): a uint8 "
                f"tensor of shape {tuple(current.shape)}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = steps
        self.skipped_steps = skipped
        if gen is not None:
            self.generator.set_state(gen)
