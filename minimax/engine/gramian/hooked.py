"""The per-example Gramian layer by layer, from one forward and backward over the candidate rows.

Rows: candidate (b, i) is the input x_b + δ_{i,b}; the kept rows are stacked as one batch of n
examples (rows are independent: no batch statistics), and one backward of Σ_r g_r / B gives every
layer's output gradient row by row. Forward hooks keep each layer's input a; a hook on the layer's
output receives b and adds the layer's rule (`minimax.engine.gramian.layers`) to K at once, so only
one layer's workspace is alive beyond autograd's own activations. Only the candidate inputs require
grad: the parameter gradients of this pass are never formed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from minimax.engine.gramian.layers import LAYER_RULES, Plan, forward_check
from minimax.problem import Batch, ModuleProblem, Problem

if TYPE_CHECKING:
    from minimax.engine.core import Engine

__all__ = ["candidate_rows", "layer_plan", "layerwise_gram", "owners", "unsupported_modules"]


def candidate_rows(
    problem: Problem, batch: Batch, deltas: Tensor, mask: Tensor
) -> tuple[Tensor, Batch, Tensor]:
    """(δ rows [n, *event], batch rows (x_b, y_b) [n, ...], example index b of each row [n]).

    deltas [m, B, *event]; mask [B, m] bool selects the rows, ordered (b, i) row-major.
    """
    if not isinstance(problem, ModuleProblem):
        raise TypeError(
            f"the layerwise Gramian needs a ModuleProblem, got {type(problem).__name__}: "
            "use gramian='materialized'"
        )
    x = problem.clean_input(batch)
    y = batch[1]
    b_idx, i_idx = torch.nonzero(mask.to(deltas.device), as_tuple=True)
    return deltas[i_idx, b_idx], (x[b_idx], y[b_idx]), b_idx


def owners(model: nn.Module) -> dict[int, list[tuple[str, nn.Module, str]]]:
    """id(parameter) → every (module path, module, attribute) that holds it directly."""
    out: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        for attr, p in module.named_parameters(recurse=False):
            out.setdefault(id(p), []).append((path, module, attr))
    return out


def unsupported_modules(model: nn.Module, names: set[str]) -> list[str]:
    """Why the layerwise Gramian cannot run on ``model`` for the parameters ``names`` ([] if it
    can): modules without a layer rule, parameters shared by several modules."""
    problems = []
    for held in owners(model).values():
        path, module, attr = held[0]
        full = f"{path}.{attr}" if path else attr
        if full not in names and not any((f"{p}.{a}" if p else a) in names for p, _, a in held):
            continue
        if len(held) > 1:
            where = ", ".join(repr(p or "<root>") for p, _, _ in held)
            problems.append(f"parameter {full!r} is shared by modules {where}")
        elif type(module) not in LAYER_RULES:
            problems.append(
                f"module {path or '<root>'!r} of type {type(module).__name__} has no layer rule "
                f"(its parameters: {', '.join(dict(module.named_parameters(recurse=False)))})"
            )
    return problems


def layer_plan(model: nn.Module, names: set[str]) -> dict[nn.Module, set[str]]:
    """Module → the names of its own parameters that are in θ; raises if any is unsupported."""
    problems = unsupported_modules(model, names)
    if problems:
        supported = ", ".join(sorted(t.__name__ for t in LAYER_RULES))
        raise ValueError(
            "the layerwise per-example Gramian cannot handle this model: "
            + "; ".join(problems)
            + f". Layer rules exist for {supported}. Use DDi(gramian='materialized') "
            "(per-example gradients, exact, more memory)."
        )
    plan: dict[nn.Module, set[str]] = {}
    for path, module in model.named_modules():
        own = {a for a, _ in module.named_parameters(recurse=False)}
        wanted = {a for a in own if (f"{path}.{a}" if path else a) in names}
        if wanted:
            plan[module] = wanted
    return plan


class _Hooks:
    """Forward hooks that add each planned layer's rule to K when its output gradient arrives."""

    def __init__(self, plan: dict[nn.Module, set[str]], rules: Plan, n: int) -> None:
        self.plan, self.rules, self.n = plan, rules, n
        self.k: Tensor | None = None
        self.calls: dict[nn.Module, int] = {}
        self.missed: set[nn.Module] = set()  # no output gradient came (yet): not downstream of δ
        self.handles: list[Any] = []

    def __enter__(self) -> _Hooks:
        for module in self.plan:
            self.handles.append(module.register_forward_hook(self._forward))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def _forward(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        self.calls[module] = self.calls.get(module, 0) + 1
        if self.calls[module] > 1:
            raise ValueError(
                f"{type(module).__name__} module ran twice in one forward: its parameters are "
                "shared across calls and the layerwise Gramian would miss the cross terms; use "
                "DDi(gramian='materialized')"
            )
        forward_check(module)
        if not isinstance(output, Tensor):
            raise TypeError(
                f"{type(module).__name__} returned {type(output).__name__}, not a tensor"
            )
        self.missed.add(module)  # until its output gradient arrives
        if not output.requires_grad:  # not downstream of δ: the pass must also track θ here
            return
        a = inputs[0].detach()
        rule = LAYER_RULES[type(module)]
        wanted = self.plan[module]

        def on_grad(grad: Tensor) -> None:
            self.missed.discard(module)
            part = rule(module, a, grad.detach(), wanted, self.rules)
            self.k = part if self.k is None else self.k + part

        output.register_hook(on_grad)


def layerwise_gram(
    engine: Engine,
    params: Mapping[str, Tensor],
    delta_rows: Tensor,
    rows: Batch,
    batch_size: int,
    plan: Plan,
) -> Tensor:
    """K [n, n] float64, K_rs = ⟨∇θ g_r, ∇θ g_s⟩ / B², from one forward + backward of the n rows.

    The backward runs to δ only (no parameter gradients); layers whose output does not depend on
    δ (e.g. an embedding of the labels) are found on the way, and then the pass is redone with
    their parameters tracked too.
    """
    problem = engine.problem
    assert isinstance(problem, ModuleProblem)
    layers = layer_plan(problem.model, set(params))
    names = {
        id(m): {f"{p}.{a}" if p else a for a in wanted}
        for p, m in problem.model.named_modules()
        for wanted in [layers.get(m, set())]
    }
    tracked: set[str] = set()
    for _ in range(2):
        p = {k: v.detach().requires_grad_(k in tracked) for k, v in params.items()}
        d = delta_rows.detach().requires_grad_(True)
        with torch.enable_grad(), _Hooks(layers, plan, delta_rows.shape[0]) as hooks:
            values = engine.objective(p, d, rows)
            targets = [d, *(p[k] for k in tracked)]
            torch.autograd.grad(values.sum() / batch_size, targets, allow_unused=True)
        missed = {k for m in hooks.missed for k in names[id(m)]} - tracked
        if not missed:
            break
        tracked |= missed
    if missed:
        raise RuntimeError(f"layers {sorted(missed)} got no output gradient in the Gramian pass")
    n = delta_rows.shape[0]
    if hooks.k is None:
        return torch.zeros(n, n, dtype=torch.float64, device=delta_rows.device)
    return hooks.k
