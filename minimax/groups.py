"""Worst-group objectives: min_θ max_g L_g(θ), L_g the mean loss over the examples of group g.

A finite max over k groups is a max over mixed strategies δ ∈ Δ_k (`minimax.Simplex`):

    max_g L_g(θ) = max_{δ ∈ Δ_k} g(θ, δ),   g(θ, δ) = Σ_g δ_g L_g(θ).

`WorstGroupProblem` is that objective as a `Problem` whose single "example" is the whole batch
(B = 1, δ of shape [1, k] shared by the batch). `minimax.Enumerate` returns the k pure
strategies e_g with their exact values L_g; `Danskin` then follows the worst group's gradient,
`DDi(tolerance=τ)` the min-norm point of the hull of the τ-active groups' gradients, and
`minimax.GroupDRO` the exponentiated-gradient mixture of Sagawa et al. (2020).

Batches are tuples whose last item is the group labels: ``(x, y, group)`` for `from_module`,
``(*data, group)`` with a plain loss function; ``group`` is an int64 tensor [N] with entries in
[0, k).

Groups with no example in the batch. Their mean loss is undefined. They are reported as absent by
`present` (so `Enumerate` never returns them, and `DDi` never puts them in its hull), and in the
objective such a group's piece is a copy of the lowest present group's loss. So the max over Δ_k
is always the worst present group's loss, whatever the sign of the losses, and a gradient that
does involve an absent group is a present group's gradient (never a fake 0). `group_losses`
reports them as NaN.

Robust and fair (worst group on adversarial inputs). The objective
max_g mean_{i∈g} max_{δ_i ∈ S} loss(x_i + δ_i) chooses the group weights and the per-example
perturbations independently, so it equals max_{q ∈ Δ_k} Σ_g q_g mean_{i∈g} loss(x_i + δ*_i) at the
per-example maximizers δ*_i. Compose it in two stages each step: find δ* with any inner solver on
a `ModuleProblem` of the same model, then run the worst-group step on the batch
``(x + δ*, y, group)`` (`adversarial_batch` does the first stage). The gradients at δ* are then
Danskin gradients of the nested max.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from minimax import checks
from minimax.inner.base import InnerSolver
from minimax.problem import Batch, ModuleProblem, Params, Problem
from minimax.sets.simplex import Simplex

__all__ = ["WorstGroupProblem", "adversarial_batch"]

PerExampleLoss = Callable[[Mapping[str, Tensor], Sequence[Any]], Tensor]


def _cross_entropy(outputs: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(outputs, y, reduction="none")


class WorstGroupProblem(Problem):
    """max_g L_g(θ) over k groups as a min-max problem with δ ∈ Δ_k (one example: the batch).

    Args:
        per_example_loss: ``(params, data) -> [N]`` the loss of each example, where ``data`` is
            the batch without its last item (the group labels).
        params: θ, name → tensor (used as given, made leaves that require grad).
        num_groups: k.
        name: for the repr.

    Use `from_module` for a model and a per-example loss on batches ``(x, y, group)``.
    Evaluating any number of candidates costs one forward over the batch (`values` computes the
    k group losses once and combines them); the pass counter grows by 1 per call.
    """

    def __init__(
        self,
        per_example_loss: PerExampleLoss,
        params: Mapping[str, Tensor],
        num_groups: int,
        *,
        name: str = "worst_group",
    ) -> None:
        super().__init__()
        if not callable(per_example_loss):
            raise TypeError("per_example_loss must be callable as (params, data) -> losses [N]")
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"num_groups must be an int ≥ 1, got {num_groups!r}")
        if not params:
            raise ValueError("params must be a non-empty dict name -> tensor")
        for k, v in params.items():
            if not isinstance(v, Tensor) or not v.is_floating_point():
                raise TypeError(f"params[{k!r}] must be a floating-point tensor")
            if v.is_leaf and not v.requires_grad:
                v.requires_grad_(True)
        self._params: Params = dict(params)
        self._loss = per_example_loss
        self.num_groups = num_groups
        self.perturbation = Simplex(num_groups)
        self.event_ndim = 1
        self.name = name
        #: the module of `from_module` (None otherwise): the engine's one-pass group Gram matrix
        #: (`minimax.engine.gramian.group`) runs on its layers
        self.model: nn.Module | None = None

    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        num_groups: int,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> WorstGroupProblem:
        """Per-example losses ``loss_fn(model_θ(x), y)`` (default: cross entropy, reduction
        "none") on batches ``(x, y, group)``; θ = the model's parameters that require grad.

        BatchNorm layers in train mode update their running statistics on every forward the
        solvers run: prefer GroupNorm, no normalization, or eval mode.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        loss = loss_fn or _cross_entropy

        def per_example(params: Mapping[str, Tensor], data: Sequence[Any]) -> Tensor:
            if len(data) != 2:
                raise ValueError("from_module expects batches (x, y, group)")
            x, y = data
            checks.finite_tensor("x", checks.float_tensor("x", x))
            buffers = dict(model.named_buffers())
            with checks.model_takes(x):
                out = functional_call(model, ({**params, **buffers},), (x,))
            return loss(out, y)

        params = {k: v for k, v in model.named_parameters() if v.requires_grad}
        problem = cls(per_example, params, num_groups, name=type(model).__name__)
        problem.model = model
        return problem

    def per_example_losses(self, params: Mapping[str, Tensor], batch: Batch) -> Tensor:
        """``[N]`` the per-example losses ℓ_b(θ) (one forward; counts no passes)."""
        data, _ = self._split(batch)
        return self._loss(params, data)

    def __repr__(self) -> str:
        return f"WorstGroupProblem({self.name}, groups={self.num_groups})"

    # -- the batch -------------------------------------------------------------------------------
    def _split(self, batch: Batch) -> tuple[tuple[Any, ...], Tensor]:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                "a worst-group batch is a tuple whose last item is the group labels, e.g. "
                "(x, y, group)"
            )
        *data, group = batch
        if not isinstance(group, Tensor) or group.dtype not in (torch.int32, torch.int64):
            raise TypeError(
                "the group labels (the batch's last item) must be an int64 tensor [N], got "
                f"{getattr(group, 'dtype', type(group).__name__)}"
            )
        if group.ndim != 1 or group.shape[0] == 0:
            raise ValueError(
                f"the group labels must have shape [N] with N ≥ 1, got {tuple(group.shape)}"
            )
        lo, hi = int(group.min()), int(group.max())
        if lo < 0 or hi >= self.num_groups:
            raise ValueError(
                f"group labels must be in [0, {self.num_groups}), got values in [{lo}, {hi}]"
            )
        return tuple(data), group

    def counts(self, batch: Batch) -> Tensor:
        """``[k]`` int64: how many examples of each group the batch holds."""
        _, group = self._split(batch)
        return torch.bincount(group, minlength=self.num_groups)

    def present(self, batch: Batch) -> Tensor:
        """``[1, k]`` bool: groups with at least one example in the batch."""
        return (self.counts(batch) > 0).unsqueeze(0)

    def proportions(self, batch: Batch) -> Tensor:
        """``[1, k]`` the groups' shares n_g / N: g(θ, proportions) is the mean loss (ERM)."""
        ref = self.reference(batch)
        c = self.counts(batch).to(dtype=ref.dtype, device=ref.device)  # divided in θ's dtype
        return (c / c.sum()).unsqueeze(0)

    # -- the pieces ------------------------------------------------------------------------------
    def pieces(self, params: Mapping[str, Tensor], batch: Batch) -> Tensor:
        """``[k]`` the pieces q_g(θ) of the objective: L_g for present groups, the lowest present
        group's loss for absent ones. torch.func-transformable; counts no passes."""
        data, group = self._split(batch)
        losses = self._loss(params, data)
        if losses.shape != group.shape:
            raise ValueError(
                f"per_example_loss returned shape {tuple(losses.shape)} but the group labels "
                f"have shape {tuple(group.shape)}: one loss per example (use reduction='none') "
                "and one group label per example"
            )
        onehot = nn.functional.one_hot(group, self.num_groups).to(losses.dtype)  # [N, k]
        counts = onehot.sum(dim=0)
        means = (onehot.T @ losses) / counts.clamp_min(1)
        present = counts > 0
        lowest = torch.where(present, means, torch.inf).amin()
        return torch.where(present, means, lowest)

    def group_losses(self, params: Mapping[str, Tensor], batch: Batch) -> Tensor:
        """``[k]`` L_g(θ), the mean loss of each group (NaN where a group has no example)."""
        with torch.no_grad():
            q = self.pieces({k: v.detach() for k, v in params.items()}, batch)
        return torch.where(self.present(batch)[0].to(q.device), q, math.nan)

    # -- Problem ---------------------------------------------------------------------------------
    def parameters(self) -> Params:
        return self._params

    def delta_shape(self, batch: Batch) -> torch.Size:
        self._split(batch)
        return torch.Size((1, self.num_groups))

    def objective(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        """g(θ, δ) = Σ_g δ_g q_g(θ): δ [1, k] → [1]."""
        return (delta * self.pieces(params, batch)).sum(dim=-1)

    def values_in_one_pass(
        self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch
    ) -> Tensor:
        """deltas [n, 1, k] → [n, 1] from one forward (g is linear in δ)."""
        return (deltas * self.pieces(params, batch)).sum(dim=-1)


def adversarial_batch(
    problem: ModuleProblem,
    inner: InnerSolver,
    batch: Batch,
    *,
    params: Mapping[str, Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(x + δ*, y, group)``: each example's best candidate δ* from ``inner`` on ``problem``
    (a `ModuleProblem` of the same model), for a robust-and-fair worst-group step.

    ``batch`` is ``(x, y, group)``; passes spent finding δ* are counted on ``problem``.
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        raise ValueError("adversarial_batch expects batch = (x, y, group)")
    x, y, group = batch
    p = problem.parameters() if params is None else params
    cands = inner(problem, p, (x, y), generator=generator)
    return (x + cands.best_deltas()).detach(), y, group
