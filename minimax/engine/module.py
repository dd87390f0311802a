"""The execution half of a `ModuleProblem`: BatchNorm modes, stacked candidates, logits.

A `ModuleProblem` declares g(θ, δ; (x, y)) = loss(model_θ(x + δ), y) and its BatchNorm mode; how
candidates are stacked into forwards and how BatchNorm layers behave in them lives here, and only
the engine (`minimax.engine.core`) calls it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor

from minimax.problem import Batch, ModuleProblem, Problem
from minimax.sets import PerturbationSet

__all__ = ["frozen", "stacked_values", "stacking_mode", "statistics_forward", "with_loss"]

STACKINGS = ("auto", "stack", "vmap", "loop")
_CPU_LOOP_THRESHOLD = 4096


def _per_restart_batchnorm(problem: Problem) -> bool:
    """Train-mode BatchNorm with statistics of each candidate's own forward."""
    return isinstance(problem, ModuleProblem) and problem.examples_coupled


@contextlib.contextmanager
def frozen(problem: Problem) -> Iterator[None]:
    """Inside, forwards update no running statistics: train-mode BatchNorm uses batch statistics
    without tracking them; with ``batchnorm="eval"`` BatchNorm runs in eval mode. No-op for
    problems without BatchNorm."""
    layers = problem.batchnorm_layers if isinstance(problem, ModuleProblem) else []
    if not layers:
        yield
        return
    assert isinstance(problem, ModuleProblem)
    saved = [(m, m.track_running_stats, m.training) for m in layers]
    try:
        for m, _, training in saved:
            if problem.batchnorm == "eval":
                m.train(False)
            elif training:
                m.track_running_stats = False
        yield
    finally:
        for m, tracked, training in saved:
            m.track_running_stats = tracked
            m.train(training)


def splittable(problem: Problem) -> bool:
    """A `ModuleProblem` whose examples are independent: rows of (x, y) evaluate alone."""
    return isinstance(problem, ModuleProblem) and not problem.examples_coupled


def stacking_mode(problem: Problem, deltas: Tensor, stacking: str) -> str:
    """How n candidates deltas [n, B, *event] are evaluated: "loop", "vmap" or "stack".

    ``"auto"``: a loop on CPU for image-sized candidates (≥ 4096 input entries, measured faster:
    benchmarks/step.py), vmap with per-restart BatchNorm (own statistics per candidate), else one
    stacked forward; vmap for problems that are not a `ModuleProblem`.
    """
    if isinstance(problem, ModuleProblem) and deltas.shape[0] == 1:
        return "loop"  # one candidate: its own forward
    if stacking != "auto":
        return stacking
    if not isinstance(problem, ModuleProblem):
        return "vmap"
    if deltas.device.type == "cpu" and deltas[0].numel() >= _CPU_LOOP_THRESHOLD:
        return "loop"
    return "vmap" if _per_restart_batchnorm(problem) else "stack"


def stacked_values(
    problem: Problem, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch
) -> Tensor:
    """One forward over the n·B inputs x + δ_i stacked along the batch: [n, B, ...] → [n, B]."""
    if not isinstance(problem, ModuleProblem):
        raise ValueError(f"stacking='stack' needs a ModuleProblem, got {type(problem).__name__}")
    if _per_restart_batchnorm(problem):
        raise ValueError(
            "stacking='stack' would share BatchNorm statistics across candidates: use "
            "'auto', 'vmap' or 'loop', or batchnorm='eval'"
        )
    x, y = problem.clean_input(batch), batch[1]
    n, b = deltas.shape[:2]
    stacked = (x.unsqueeze(0) + deltas).reshape(n * b, *x.shape[1:])
    ys = y.unsqueeze(0).expand(n, *y.shape).reshape(n * b, *y.shape[1:])
    with frozen(problem):
        values = problem.loss_fn(problem.network(params, stacked), ys)
    problem.check_loss(values, n * b)
    return values.reshape(n, b)


def statistics_forward(problem: Problem, batch: Batch, delta: Tensor) -> bool:
    """One no-grad train-mode forward at x + δ [B, ...] that updates BatchNorm running
    statistics; False (nothing run) without BatchNorm or with the model in eval mode."""
    if not isinstance(problem, ModuleProblem) or not problem.batchnorm_layers:
        return False
    if not problem.model.training:
        return False
    x = problem.clean_input(batch)
    with torch.no_grad():
        problem.model(x + delta)
    return True


def logits(problem: Problem, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
    """model_θ(x + δ) [B, C] for one candidate δ [B, ...] of a classifier's `ModuleProblem`."""
    if not isinstance(problem, ModuleProblem):
        raise TypeError(
            "class logits need a ModuleProblem (a classifier and labels), got "
            f"{type(problem).__name__}"
        )
    x = problem.clean_input(batch)
    with frozen(problem):
        return problem.network(params, x + delta)


def with_loss(
    problem: Problem,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    perturbation: PerturbationSet | None = None,
) -> ModuleProblem:
    """The same model and BatchNorm mode under another per-example loss of the logits (and
    another set, e.g. a targeted attack's rows)."""
    if not isinstance(problem, ModuleProblem):
        raise TypeError(
            "another loss of the class logits needs a ModuleProblem (a classifier and labels), "
            f"got {type(problem).__name__}"
        )
    S = problem.perturbation if perturbation is None else perturbation
    return ModuleProblem(problem.model, loss_fn, S, batchnorm=problem.batchnorm)


def classifier(
    problem: Problem, params: Mapping[str, Tensor], count: Callable[..., None]
) -> Callable[[Tensor], Tensor]:
    """model_θ as a function of inputs z [n, ...] → logits [n, C], for attacks that move the
    inputs themselves (FAB): each call counts one forward (and one backward when z tracks
    gradients) through ``count``; running statistics frozen."""
    if not splittable(problem):
        raise ValueError(
            "this attack needs a classifier's ModuleProblem whose examples are independent "
            "(class logits, labels; no train-mode BatchNorm: put the model in eval mode or use "
            f"ModuleProblem(batchnorm='eval')), got {problem!r}"
        )
    assert isinstance(problem, ModuleProblem)

    def forward(z: Tensor) -> Tensor:
        count(forward=1, backward=int(torch.is_grad_enabled() and z.requires_grad))
        with frozen(problem):
            return problem.network(params, z)

    return forward
