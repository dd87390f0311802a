"""Layer rules: one layer's share of the per-example Gramian from its input a and output grad b.

A rule is ``rule(module, a, b, wanted, plan) -> [n, n] float64``: a is the layer's input for the
n rows (one row per example), b the gradient of Σ_r g_r / B with respect to the layer's output (so
row r of b belongs to row r alone: rows are independent), ``wanted`` the names of the module's
parameters that are in θ (``{"weight", "bias"}`` or a subset). The sum of every rule's output is
K_rs = ⟨∇θ g_r, ∇θ g_s⟩ / B².

Linear and Conv2d weights choose per layer between the ghost identity (pairs of positions, never
the gradient) and per-example gradients of that one layer in row blocks, by a flop count
(`Plan.choose`, "mixed ghost"). Norm layers, biases and embeddings use closed forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minimax.engine.gramian.blocks import ACC, ghost_gram, gram64, recompute_factor, rows_gram

__all__ = ["LAYER_RULES", "Plan", "forward_check"]


@dataclass
class Plan:
    """How rules run: ``strategy`` "auto" (cheaper by flop count), "ghost" or "materialized";
    ``budget``: bytes one block of per-example gradients or position products may take.
    ``choices`` records, per call, (module type, chosen way, ghost flops, materialized flops)."""

    strategy: str = "auto"
    budget: int = 256 * 1024**2
    choices: list[tuple[str, str, float, float]] = field(default_factory=list)

    def choose(self, name: str, ghost_flops: float, mat_flops: float) -> str:
        way = self.strategy
        if way == "auto":
            way = "ghost" if ghost_flops < mat_flops else "materialized"
        self.choices.append((name, way, ghost_flops, mat_flops))
        return way


Rule = Callable[[nn.Module, Tensor, Tensor, set[str], Plan], Tensor]


def _sum_gram(rows: Tensor) -> Tensor:
    """Gram of small per-example gradients [n, ...] (biases, norm scales)."""
    return gram64(rows.reshape(rows.shape[0], -1))


def _sequence_weight_gram(
    u_rows: Callable[[int, int], Tensor], v: Tensor, d: int, plan: Plan, name: str
) -> Tensor:
    """Σ_t v_t u_tᵀ per row (u [n, T, d] made by ``u_rows(s, t)``, v [n, T, c]): ghost or rows."""
    n, positions, c = v.shape
    itemsize = v.element_size()
    ghost = float(n) ** 2 * positions**2 * (d + c)
    redo = recompute_factor(n, c * d, itemsize, plan.budget)
    mat = float(n) * positions * c * d * redo + float(n) ** 2 * c * d
    if plan.choose(name, ghost, mat) == "ghost":
        return ghost_gram(u_rows, v, plan.budget)

    def rows(s: int, t: int) -> Tensor:
        return torch.einsum("ntc,ntd->ncd", v[s:t], u_rows(s, t))

    return rows_gram(rows, n, c * d, itemsize, plan.budget, v.device)


def _sliced(whole: Tensor) -> Callable[[int, int], Tensor]:
    return lambda s, t: whole[s:t]


def linear_rule(module: nn.Module, a: Tensor, b: Tensor, wanted: set[str], plan: Plan) -> Tensor:
    """Linear: ⟨G_i, G_j⟩ = Σ_{t,s} ⟨a_it, a_js⟩⟨b_it, b_js⟩ (t, s over any middle axes); bias
    Σ_t b_it. Without middle axes the weight term is ⟨a_i, a_j⟩⟨b_i, b_j⟩."""
    n = b.shape[0]
    u = a.reshape(n, -1, a.shape[-1])
    v = b.reshape(n, -1, b.shape[-1])
    k = torch.zeros(n, n, dtype=ACC, device=b.device)
    if "weight" in wanted:
        if v.shape[1] == 1:
            k += gram64(u[:, 0]) * gram64(v[:, 0])
        else:
            k += _sequence_weight_gram(_sliced(u), v, u.shape[-1], plan, "Linear")
    if "bias" in wanted:
        k += _sum_gram(v.sum(1))
    return k


def conv2d_rule(module: nn.Module, a: Tensor, b: Tensor, wanted: set[str], plan: Plan) -> Tensor:
    """Conv2d: the Linear identity over output positions l of the unfolded input (im2col),
    group by group; bias Σ_l b_il."""
    assert isinstance(module, nn.Conv2d)
    if a.ndim != 4:
        raise ValueError(f"Conv2d rule needs batched inputs [n, C, H, W], got {tuple(a.shape)}")
    n, groups = b.shape[0], module.groups
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    padded = F.pad(a, module._reversed_padding_repeated_twice, mode=mode)
    v = b.reshape(n, groups, b.shape[1] // groups, -1).transpose(2, 3)  # [n, G, L, C_g]
    d = a.shape[1] // groups * math.prod(module.kernel_size)
    k = torch.zeros(n, n, dtype=ACC, device=b.device)
    if "weight" in wanted:
        for g in range(groups):

            def unfolded(s: int, t: int, g: int = g) -> Tensor:  # [t − s, L, D_g]
                cols = F.unfold(padded[s:t], module.kernel_size, module.dilation, 0, module.stride)
                return cols.reshape(t - s, groups, d, -1)[:, g].transpose(1, 2)

            if n * v.shape[2] * d * b.element_size() <= plan.budget:  # unfold once, not per block
                k += _sequence_weight_gram(_sliced(unfolded(0, n)), v[:, g], d, plan, "Conv2d")
            else:
                k += _sequence_weight_gram(unfolded, v[:, g], d, plan, "Conv2d")
    if "bias" in wanted:
        k += _sum_gram(b.reshape(n, b.shape[1], -1).sum(-1))
    return k


def _affine_rule(a_hat: Tensor, b: Tensor, reduce: tuple[int, ...], wanted: set[str]) -> Tensor:
    """y = γ ⊙ x̂ + β: per-example ∂γ = Σ b ⊙ x̂ and ∂β = Σ b over the axes ``reduce``."""
    n = b.shape[0]
    k = torch.zeros(n, n, dtype=ACC, device=b.device)
    if "weight" in wanted:
        k += _sum_gram((b * a_hat).sum(reduce) if reduce else b * a_hat)
    if "bias" in wanted:
        k += _sum_gram(b.sum(reduce) if reduce else b)
    return k


def group_norm_rule(
    module: nn.Module, a: Tensor, b: Tensor, wanted: set[str], plan: Plan
) -> Tensor:
    """GroupNorm: x̂ = group_norm(a) without affine, then the affine closed form per channel."""
    assert isinstance(module, nn.GroupNorm)
    a_hat = F.group_norm(a, module.num_groups, None, None, module.eps)
    return _affine_rule(a_hat, b, tuple(range(2, a.ndim)), wanted)


def layer_norm_rule(
    module: nn.Module, a: Tensor, b: Tensor, wanted: set[str], plan: Plan
) -> Tensor:
    """LayerNorm: x̂ = layer_norm(a) without affine; γ, β have the normalized shape."""
    assert isinstance(module, nn.LayerNorm)
    shape = tuple(module.normalized_shape)
    a_hat = F.layer_norm(a, shape, None, None, module.eps)
    return _affine_rule(a_hat, b, tuple(range(1, a.ndim - len(shape))), wanted)


def batch_norm_rule(
    module: nn.Module, a: Tensor, b: Tensor, wanted: set[str], plan: Plan
) -> Tensor:
    """BatchNorm with running statistics (eval mode): x̂ = (a − μ) / √(σ² + ε) per channel."""
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    mean, var = module.running_mean, module.running_var
    assert mean is not None and var is not None  # forward_check ran at forward time
    shape = (1, -1) + (1,) * (a.ndim - 2)
    a_hat = (a - mean.reshape(shape)) / (var.reshape(shape) + module.eps).sqrt()
    return _affine_rule(a_hat, b, tuple(range(2, a.ndim)), wanted)


def forward_check(module: nn.Module) -> None:
    """Checks at forward time (the mode may change before the backward): BatchNorm must use its
    running statistics, not the batch's."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
        module.training or module.running_mean is None or module.running_var is None
    ):
        raise ValueError(
            f"{type(module).__name__} uses batch statistics here, so the examples are coupled and "
            "the per-example Gramian is not defined: use DDi(per_example=False), "
            "ModuleProblem(..., batchnorm='eval'), or a model without BatchNorm (e.g. GroupNorm)"
        )


def embedding_rule(module: nn.Module, a: Tensor, b: Tensor, wanted: set[str], plan: Plan) -> Tensor:
    """Embedding: ⟨G_i, G_j⟩ = Σ_{t,s} [id_it = id_js] ⟨b_it, b_js⟩ (padding positions dropped),
    or per-example gradients [V, E] when cheaper."""
    assert isinstance(module, nn.Embedding)
    if module.scale_grad_by_freq:
        raise ValueError(
            "Embedding(scale_grad_by_freq=True) scales gradients by batch counts, which couples "
            "the examples: use DDi(gramian='materialized') or scale_grad_by_freq=False"
        )
    n = b.shape[0]
    ids = a.reshape(n, -1)
    v = b.reshape(n, ids.shape[1], -1)
    if module.padding_idx is not None:
        v = v * (ids != module.padding_idx).unsqueeze(-1).to(v.dtype)
    vocab, dim = module.num_embeddings, module.embedding_dim
    positions = ids.shape[1]
    ghost = float(n) ** 2 * positions**2 * (1 + dim)
    redo = recompute_factor(n, vocab * dim, v.element_size(), plan.budget)
    mat = float(n) * positions * dim * redo + float(n) ** 2 * vocab * dim
    if plan.choose("Embedding", ghost, mat) == "ghost":

        def same(ui: Tensor, uj: Tensor) -> Tensor:
            return (ui.reshape(-1, 1) == uj.reshape(1, -1)).to(v.dtype)

        return ghost_gram(lambda s, t: ids[s:t].unsqueeze(-1), v, plan.budget, same)

    def rows(s: int, t: int) -> Tensor:
        out = torch.zeros(t - s, vocab, dim, dtype=v.dtype, device=v.device)
        return out.scatter_add_(1, ids[s:t].unsqueeze(-1).expand(-1, -1, dim), v[s:t])

    return rows_gram(rows, n, vocab * dim, v.element_size(), plan.budget, v.device)


LAYER_RULES: dict[type[nn.Module], Rule] = {
    nn.Linear: linear_rule,
    nn.Conv2d: conv2d_rule,
    nn.GroupNorm: group_norm_rule,
    nn.LayerNorm: layer_norm_rule,
    nn.BatchNorm1d: batch_norm_rule,
    nn.BatchNorm2d: batch_norm_rule,
    nn.BatchNorm3d: batch_norm_rule,
    nn.Embedding: embedding_rule,
}
"""Exact module types with a layer rule (subclasses may change ``forward``, so they are not
matched)."""
