"""Projected gradient ascent with restarts (PGD) and its one-step special case (FGSM)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Generator, Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.base import Candidates, InnerSolver
from minimax.inner.early_stop import ActiveRows, EarlyStop
from minimax.problem import Batch, Params
from minimax.sets.steps import projected_step

__all__ = ["FGSM", "PGD"]


class PGD(InnerSolver):
    """Projected steepest ascent on δ, with m restarts.

    Each iteration takes the set's steepest-ascent step (sign for L∞, normalized gradient for L2,
    ...) and projects back onto the set (and the bounds on x + δ).

    Args:
        steps: ascent iterations K (K forward and backward passes per restart, plus one forward
            to score the result).
        step_size: a float, or a tensor [B] of per-example step sizes.
        restarts: m, the number of candidates per example.
        random_start: start each restart at a random point of the set (else at δ = 0).
        select: ``"last"`` returns the last iterate, ``"best"`` the best iterate of each restart:
            per (restart, example), or, where the examples are coupled (train-mode BatchNorm,
            `Problem.examples_coupled`), per restart over whole-batch iterates (the iterate with
            the best batch-mean value), so that the returned values are g at the returned deltas.
        batched: evaluate the restarts in stacked calls (``False``: one restart at a time, same
            random starts and same result).
        chunk: at most this many restarts per stacked call (None: what the engine prefers,
            see `Engine.chunk`: one at a time for image batches on CPU, else all).
        seed: seeds the solver's own `torch.Generator` (used unless a generator is passed).
        stop: early stopping (`minimax.inner.early_stop.EarlyStop`; None: all ``steps``). With
            ``stop.cycles``, on a classifier whose examples are independent, a candidate stops
            once its iterate equals one of its last ``stop.window`` iterates: a fixed step makes
            PGD a deterministic map, so the rest of its run would only revisit points. Nothing
            is lost: ``"best"`` is the best of the cycle, ``"last"`` the cycle's point at step
            ``steps`` (the same result as the full run). Only the examples with a running
            candidate are evaluated.
    """

    def __init__(
        self,
        steps: int = 10,
        step_size: float | Tensor = 2.0 / 255,
        restarts: int = 1,
        *,
        random_start: bool = True,
        select: Literal["last", "best"] = "last",
        batched: bool = True,
        chunk: int | None = None,
        seed: int | None = 0,
        stop: EarlyStop | None = None,
    ) -> None:
        if stop is not None and not isinstance(stop, EarlyStop):
            raise TypeError(f"stop must be an EarlyStop or None, got {type(stop).__name__}")
        self.stop = stop
        if chunk is not None:
            chunk = checks.integer("chunk", chunk, minimum=1)
        super().__init__(restarts=restarts, random_start=random_start, seed=seed)
        self.steps = checks.integer("steps", steps, minimum=0)
        select = checks.choice("select", select, ("last", "best"))
        self.step_size = step_size_value("step_size", step_size)
        self.select = select
        self.batched = batched
        self.chunk = chunk

    def __repr__(self) -> str:
        size = self.step_size if not isinstance(self.step_size, Tensor) else "tensor"
        return (
            f"{type(self).__name__}(steps={self.steps}, step_size={size}, "
            f"restarts={self.restarts}, "
            f"random_start={self.random_start}, select={self.select!r})"
        )

    step_size: float | Tensor | None  # None: FGSM's default, the set's ε

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: Generator | None
    ) -> Candidates:
        assert self.step_size is not None
        return self._search(engine, params, batch, generator, self.step_size)

    def _ascend_until_cycle(
        self,
        engine: Engine,
        params: Mapping[str, Tensor],
        batch: Batch,
        deltas: Tensor,
        step_size: float | Tensor,
    ) -> Candidates:
        """`_ascend` with the cycle rule (`stop`): only the examples with a running candidate
        are evaluated; a cycled candidate's later iterates are read off its cycle."""
        assert self.stop is not None
        S = engine.problem.perturbation
        x = engine.problem.clean_input(batch)
        e = deltas.ndim - 2
        lift = lambda t: t.reshape(*t.shape, *([1] * e))  # noqa: E731
        best_d, best_v = deltas, torch.full(deltas.shape[:2], -torch.inf, dtype=deltas.dtype)
        best_v = best_v.to(deltas.device)
        active = torch.ones(deltas.shape[:2], dtype=torch.bool, device=deltas.device)
        rows, past = ActiveRows(batch), list[Tensor]()
        step = projected_step(S, x, step_size, e)
        for k in range(self.steps):
            hit, end = _cycle_end(past, deltas, self.steps - k)
            past = [*past[1 - self.stop.window :], deltas] if self.stop.window > 1 else [deltas]
            final = lift(hit & active)
            deltas = torch.where(final, end, deltas)  # what the full run would end with
            active &= ~hit
            if rows.update(active.any(dim=0)) == 0:
                break
            d_r = deltas if rows.everything else deltas[:, rows.rows]
            v_r, g_r = engine.values_and_input_grad(params, d_r.detach(), rows.batch)
            g = torch.zeros_like(deltas)
            g[:, rows.rows] = g_r
            if self.select == "best":  # "last" reads only the final iterates
                v = torch.full_like(best_v, -torch.inf)
                v[:, rows.rows] = v_r
                v = torch.where(active, v, -torch.inf)
                best_d, best_v = _keep_best(best_d, best_v, deltas.detach(), v, False)
            deltas = torch.where(lift(active), step(deltas, g), deltas).detach()
        return self._finish(engine, params, batch, deltas, best_d, best_v, False)

    def _search(
        self,
        engine: Engine,
        params: Params,
        batch: Batch,
        generator: Generator | None,
        step_size: float | Tensor,
    ) -> Candidates:
        """The search with this call's step size (FGSM's default ε comes from the set)."""
        start = self.initial(engine.problem, batch, generator)
        size = (self.chunk or engine.chunk(start) or self.restarts) if self.batched else 1
        if size >= self.restarts:
            return self._ascend(engine, params, batch, start, step_size)
        parts = [self._ascend(engine, params, batch, s, step_size) for s in start.split(size)]
        return Candidates(
            torch.cat([p.deltas for p in parts]), torch.cat([p.values for p in parts])
        )

    def _ascend(
        self,
        engine: Engine,
        params: Mapping[str, Tensor],
        batch: Batch,
        deltas: Tensor,
        step_size: float | Tensor,
    ) -> Candidates:
        """Run the ascent from deltas [n, B, *event]; returns n candidates per example, scored by
        the engine (`Engine.score`: it keeps the graph where the step's rule can use it)."""
        if self.stop is not None and self.stop.cycles and engine.rows_independent:
            return self._ascend_until_cycle(engine, params, batch, deltas, step_size)
        S = engine.problem.perturbation
        x = engine.problem.clean_input(batch)
        event_ndim = deltas.ndim - 2
        coupled = engine.problem.examples_coupled
        best_d, best_v = deltas, deltas.new_empty(0)  # "best" only
        if self.select == "best":
            best_v = torch.full(
                deltas.shape[:2], -torch.inf, dtype=deltas.dtype, device=deltas.device
            )
        step = projected_step(S, x, step_size, event_ndim)  # per-call work done once
        deltas = deltas.detach()
        if deltas.shape[0] == 1:  # one candidate: the engine's loop over a single δ
            d = deltas[0]
            with engine.input_gradients(params, batch) as at:
                for _ in range(self.steps):
                    v, g = at(d)
                    if self.select == "best":
                        best_d, best_v = _keep_best(best_d, best_v, d[None], v[None], coupled)
                    d = step(d, g)
            deltas = d[None]
        else:
            for _ in range(self.steps):
                v, g = engine.values_and_input_grad(params, deltas, batch)
                if self.select == "best":
                    best_d, best_v = _keep_best(best_d, best_v, deltas, v, coupled)
                deltas = step(deltas, g)
        return self._finish(engine, params, batch, deltas, best_d, best_v, coupled)

    def _finish(
        self,
        engine: Engine,
        params: Mapping[str, Tensor],
        batch: Batch,
        deltas: Tensor,
        best_d: Tensor,
        best_v: Tensor,
        coupled: bool,
    ) -> Candidates:
        """The candidates after the last step: the last iterates, scored by the engine, or the
        best iterate of each run with the last one evaluated too."""
        if self.select == "last":
            return Candidates(deltas, engine.score(params, deltas, batch))
        with torch.no_grad():
            v = engine.values(params, deltas, batch)
        best_d, best_v = _keep_best(best_d, best_v, deltas, v, coupled)
        return Candidates(best_d, best_v)


def _cycle_end(past: list[Tensor], d: Tensor, remaining: int) -> tuple[Tensor, Tensor]:
    """Whether each candidate's iterate d [n, B, ...] repeats one of ``past`` (oldest first),
    and where: the iterate that ``remaining`` more steps would reach (d where none)."""
    n, b = d.shape[:2]
    hit = torch.zeros(n, b, dtype=torch.bool, device=d.device)
    end = d.clone()
    for j, p in enumerate(past):  # a later match (a shorter period) overrides an earlier one
        same = (p == d).flatten(2).all(dim=2)
        period = len(past) - j
        m = remaining % period  # the end is δ_{t − period + m}: past[j + m], or d when m = 0
        target = past[j + m] if m > 0 else d
        end = torch.where(same.reshape(n, b, *([1] * (d.ndim - 2))), target, end)
        hit |= same
    return hit, end


def step_size_value(name: str, value: object, *, positive: bool = False) -> float | Tensor:
    """A step size: a finite float ≥ 0 (> 0 with ``positive``), or a floating-point tensor [B]
    of them; a negative step would descend, an infinite one leave the set."""
    if isinstance(value, Tensor):
        checks.finite_tensor(name, checks.float_tensor(name, value))
        if bool((value < 0).any()) or (positive and bool((value == 0).any())):
            raise ValueError(f"{name} must be {'> 0' if positive else '≥ 0'} for every example")
        return value
    return checks.real_number(name, value, positive=positive, nonnegative=True)


def _keep_best(
    best_d: Tensor, best_v: Tensor, d: Tensor, v: Tensor, coupled: bool
) -> tuple[Tensor, Tensor]:
    """The better of two iterates [n, B, ...] with values [n, B]: per (restart, example), or per
    restart by the batch mean where the examples are ``coupled`` (never splice batches)."""
    better = v > best_v
    if coupled:
        better = (v.mean(dim=1) > best_v.mean(dim=1)).unsqueeze(1).expand_as(v)
    mask = better.reshape(*better.shape, *([1] * (d.ndim - 2)))
    return torch.where(mask, d, best_d), torch.where(better, v, best_v)


class FGSM(PGD):
    """One signed-gradient (steepest-ascent) step of size ε from δ = 0 (or a random start).

    ``step_size`` defaults to the set's ε.
    """

    def __init__(
        self,
        step_size: float | Tensor | None = None,
        restarts: int = 1,
        *,
        random_start: bool = False,
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            steps=1, step_size=0.0, restarts=restarts, random_start=random_start, seed=seed
        )
        self.step_size = (
            None if step_size is None else step_size_value("step_size", step_size, positive=True)
        )

    def __repr__(self) -> str:
        return f"FGSM(step_size={self.step_size}, restarts={self.restarts})"

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: Generator | None
    ) -> Candidates:
        step = self.step_size
        if step is None:
            step = getattr(engine.problem.perturbation, "eps", None)
            if step is None:
                raise ValueError(
                    f"FGSM needs a step_size for {engine.problem.perturbation!r} (it has no eps)"
                )
        return self._search(engine, params, batch, generator, step)
