"""The Gram matrix of k group-mean gradients from one forward and one backward.

For a worst-group objective the pieces are L_g(θ) = Σ_b A_bg ℓ_b(θ), A [N, k] the averaging matrix
(A_bg = 1/n_g when example b is in group g). Their Gram matrix is K = Aᵀ P A, P the per-example
Gramian, and the layers' share of it comes from quantities one backward of Σ_b ℓ_b leaves behind:
a layer's input a_b and the gradient c_b of Σ ℓ at its output, row by row. With rows independent
(no batch statistics), ∂L_g/∂out_b = A_bg c_b, so the gradient of L_g with respect to that layer's
parameters is the layer's vector-Jacobian product with the cotangent A_·g ⊙ c. One vmapped product
per layer gives the k group gradients *of that layer* (k × its parameters, freed at once), and
K = Σ_layers G_layer G_layerᵀ in float64: neither P nor the k whole gradients are ever formed.

The direction d = Σ_g α_g ∇L_g is one more backward through the same graph, with the weights
w_b = Σ_g α_g A_bg, and ‖d‖² is checked against αᵀKα. In all, a DDi step over the k groups costs
one forward and two backwards, whatever the number of active groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp

from minimax.engine.gramian.hooked import owners

__all__ = ["group_layers", "group_layerwise"]

ACC = torch.float64


def group_layers(model: nn.Module, names: set[str]) -> dict[nn.Module, dict[str, str]] | None:
    """Leaf module → {attribute: full name} of its parameters in θ; None when some parameter of θ
    is not held by exactly one leaf module (the one-pass Gram matrix then does not apply)."""
    layers: dict[nn.Module, dict[str, str]] = {}
    found: set[str] = set()
    for held in owners(model).values():
        path, module, attr = held[0]
        full = f"{path}.{attr}" if path else attr
        if full not in names:
            continue
        if len(held) > 1 or next(module.children(), None) is not None:
            return None
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            return None  # batch statistics couple the rows
        layers.setdefault(module, {})[attr] = full
        found.add(full)
    return layers if found == names else None


class _Capture:
    """Forward hooks keeping each layer's input and output (the backward then asks for the
    gradient of Σ ℓ at the outputs only: no parameter gradient is formed in that pass)."""

    def __init__(self, layers: Mapping[nn.Module, Any]) -> None:
        self.layers = layers
        self.inputs: dict[nn.Module, Tensor] = {}
        self.outputs: dict[nn.Module, Tensor] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> _Capture:
        self.handles = [m.register_forward_hook(self._forward) for m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def _forward(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if module in self.inputs:
            raise ValueError(
                f"{type(module).__name__} ran twice in one forward: the one-pass group Gram "
                "matrix would miss the cross terms"
            )
        if len(inputs) != 1 or not isinstance(output, Tensor) or not output.requires_grad:
            return  # left out: the completeness check below refuses the pass
        self.inputs[module] = inputs[0].detach()
        self.outputs[module] = output


def _linear_gradients(
    a: Tensor, c: Tensor, sizes: list[int], padded: Tensor | None
) -> list[Tensor]:
    """Linear: the group sums of c_b a_bᵀ (weight [k, o, i]) and of c_b (bias [k, o]); rows of a
    [N, ..., i] and c [N, ..., o] sorted by group. One batched product over the groups padded to
    the largest (``padded`` [k, n_max] row indices, −1 for padding) or one product per group."""
    u, v = a.reshape(a.shape[0], -1, a.shape[-1]), c.reshape(c.shape[0], -1, c.shape[-1])
    if padded is not None:
        zero_u = torch.cat([u, u.new_zeros(1, *u.shape[1:])])
        zero_v = torch.cat([v, v.new_zeros(1, *v.shape[1:])])
        up, vp = zero_u[padded].flatten(1, 2), zero_v[padded].flatten(1, 2)  # [k, n_max·L, ·]
        return [vp.transpose(1, 2) @ up, vp.sum(1)]
    pairs = [(vg.flatten(0, 1), ug.flatten(0, 1)) for ug, vg in zip(u.split(sizes), v.split(sizes))]
    return [
        torch.stack([vg.T @ ug for vg, ug in pairs]),
        torch.stack([vg.sum(0) for vg, _ in pairs]),
    ]


def _layer_gradients(
    module: nn.Module,
    own: dict[str, Tensor],
    a: Tensor,
    c: Tensor,
    sizes: list[int],
    padded: Tensor | None,
) -> dict[str, Tensor]:
    """The layer's share of each group's gradient, name → [k, *p], from its inputs a and output
    gradients c (already divided by n_g) with rows sorted by group, ``sizes[g]`` rows each.
    Linear layers multiply directly; any other layer runs its own vjp on each group's rows.
    Every row is used once: about the layer's share of one backward, whatever k."""
    if type(module) is nn.Linear:
        weight, bias = _linear_gradients(a, c, sizes, padded)
        return {name: {"weight": weight, "bias": bias}[name] for name in own}
    out: dict[str, list[Tensor]] = {name: [] for name in own}
    for ag, cg in zip(a.split(sizes), c.split(sizes)):
        pullback = vjp(lambda q, ag=ag: functional_call(module, q, (ag,)), own)[1]
        (part,) = pullback(cg)
        for name in own:
            out[name].append(part[name])
    return {name: torch.stack(parts) for name, parts in out.items()}


def _sorted_rows(
    group: Tensor, groups: list[int]
) -> tuple[Tensor, Tensor, list[int], Tensor | None]:
    """(order [n] the kept rows sorted by group, 1/n_g of each, sizes, padded index or None).

    The padded [k, n_max] index (−1: padding) is built when padding costs at most 25% more rows.
    """
    counts = torch.bincount(group, minlength=max(groups) + 1)[groups]
    sizes = counts.tolist()
    if 0 in sizes:
        raise ValueError(f"every group of {groups} needs an example in the batch")
    rank = torch.full((int(group.max()) + 1,), len(groups), dtype=torch.int64, device=group.device)
    rank[torch.tensor(groups, device=group.device)] = torch.arange(len(groups), device=group.device)
    key = rank[group]
    order = torch.argsort(key, stable=True)[: sum(sizes)]  # unkept rows (key k) sort last
    scale = (1.0 / counts.to(torch.float64))[key[order]]
    padded = None
    n_max = max(sizes)
    if n_max * len(sizes) <= 1.25 * sum(sizes):
        starts = torch.cumsum(counts, 0) - counts
        pos = torch.arange(n_max, device=group.device)
        padded = torch.where(pos < counts[:, None], starts[:, None] + pos, -1)
    return order, scale, sizes, padded


def group_layerwise(
    model: nn.Module,
    params: Mapping[str, Tensor],
    losses: Callable[[Mapping[str, Tensor]], Tensor],
    group: Tensor,
    groups: list[int],
) -> tuple[Tensor, Callable[[Tensor], dict[str, Tensor]]]:
    """(K [k, k] float64 with K_gh = ⟨∇L_g, ∇L_h⟩, α [k] ↦ d = Σ_g α_g ∇L_g) for the k groups
    ``groups`` (distinct, in any order), L_g the mean of the per-example losses over the examples
    with ``group == g``.

    Args:
        model: the module whose leaf layers hold θ (`group_layers` must accept it).
        params: θ, name → tensor (the names of ``model.named_parameters()``).
        losses: θ ↦ the per-example losses ℓ [N] (one forward of ``model``).
        group: [N] int64 group labels; every group in ``groups`` must have an example.

    One forward and one backward (to the layer outputs, no parameter gradient); the k group
    gradients are kept layer by layer (k × the parameters), so d costs no further pass.
    """
    layers = group_layers(model, set(params))
    if layers is None:
        raise ValueError("the one-pass group Gram matrix needs every parameter in one leaf layer")
    if len(set(groups)) != len(groups) or not groups:
        raise ValueError(f"groups must be distinct group labels, got {groups}")
    perm = sorted(range(len(groups)), key=groups.__getitem__)
    order, scale, sizes, padded = _sorted_rows(group, sorted(groups))
    p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad(), _Capture(layers) as cap:
        ell = losses(p)
        if ell.shape != group.shape:
            raise ValueError(f"losses must be [N] = [{group.shape[0]}], got {tuple(ell.shape)}")
        missing = [type(m).__name__ for m in layers if m not in cap.outputs]
        if missing:
            raise ValueError(f"layers {missing} did not run on θ in the group Gram pass")
        grads = torch.autograd.grad(ell.sum(), list(cap.outputs.values()), allow_unused=True)
    per_group: dict[str, Tensor] = {}  # name → [k, *p], groups in sorted order
    for (module, out), c in zip(cap.outputs.items(), grads):  # in forward order, as asked
        c = torch.zeros_like(out) if c is None else c
        c = c[order] * scale.to(c.dtype).reshape(-1, *([1] * (c.ndim - 1)))
        own = {attr: p[full].detach() for attr, full in layers[module].items()}
        a = cap.inputs[module][order]
        for attr, g in _layer_gradients(module, own, a, c, sizes, padded).items():
            per_group[layers[module][attr]] = g
    names = list(p)
    flat = torch.cat([per_group[n].reshape(len(groups), -1) for n in names], dim=1)
    inverse = torch.tensor(perm).argsort()  # sorted position of each caller's group
    flat = flat[inverse]
    wide = flat.to(ACC)
    gram = wide @ wide.T

    def direction(alpha: Tensor) -> dict[str, Tensor]:
        d = alpha.to(flat.device, flat.dtype) @ flat
        parts = d.split([p[n].numel() for n in names])
        return {n: part.reshape(p[n].shape) for n, part in zip(names, parts)}

    return gram, direction
