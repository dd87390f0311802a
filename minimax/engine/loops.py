"""The loops over one candidate δ at a time (PGD's iterations, Square's queries): θ, the batch,
grad mode and BatchNorm's mode set once for the loop, not at every call; one counted pass per
call, as in `Engine.values` and `Engine.values_and_input_grad`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor

from minimax.engine import module as _module
from minimax.problem import Batch, Problem

__all__ = ["CandidateLoops"]


class CandidateLoops:
    """The engine's half that runs an inner solver's loop over single candidates."""

    problem: Problem
    last_values: Tensor | None

    def count(self, *, forward: int = 0, backward: int = 0) -> None:
        raise NotImplementedError  # the engine's

    def evaluator(self, params: Mapping[str, Tensor], batch: Batch) -> Callable[[Tensor], Tensor]:
        """``at(δ)``: g [B] at one candidate δ [B, *event] at a time, without a graph, with θ
        and the batch checked once (a query loop: Square). Each call is one counted forward,
        BatchNorm in the problem's mode as in `values`."""
        g = self.problem.objective_at(params, batch)
        has_batchnorm = bool(getattr(self.problem, "batchnorm_layers", True))
        checked = False

        def at(delta: Tensor) -> Tensor:
            nonlocal checked
            if torch.is_grad_enabled():
                with torch.no_grad():
                    return at(delta)
            if not checked:
                self.problem.check_delta(delta, batch)
                checked = True
            if has_batchnorm:
                with _module.frozen(self.problem):
                    v = g(delta)
            else:
                v = g(delta)
            self.count(forward=1)
            self.last_values = v
            return v

        return at

    @contextlib.contextmanager
    def input_gradients(
        self, params: Mapping[str, Tensor], batch: Batch
    ) -> Iterator[Callable[[Tensor], tuple[Tensor, Tensor]]]:
        """Inside, ``at(δ)`` for one candidate δ [B, *event] at a time gives g [B] (detached)
        and ∇_δ Σ_b g [B, *event]: `values_and_input_grad` of one candidate with θ, the batch,
        grad mode and BatchNorm's mode set once for the whole loop (PGD's iterations). Each call
        is one forward and one backward, counted when the loop ends."""
        g = self.problem.objective_at(params, batch)
        calls = 0

        def at(delta: Tensor) -> tuple[Tensor, Tensor]:
            nonlocal calls
            if calls == 0:  # the loop's δ keeps its shape: checked once
                self.problem.check_delta(delta, batch)
            d = delta.detach().requires_grad_(True)
            v = g(d)  # ∇ of Σ_b v_b: v's backward from ones
            (grad,) = torch.autograd.grad(v, d, torch.ones_like(v))
            calls += 1
            self.last_values = v = v.detach()
            return v, grad

        try:
            with _module.frozen(self.problem), torch.enable_grad():
                yield at
        finally:
            self.count(forward=calls, backward=calls)
