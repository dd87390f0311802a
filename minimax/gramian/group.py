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
from torch.func import functional_call, vjp, vmap

__all__ = ["group_layers", "group_layerwise"]

ACC = torch.float64


def group_layers(model: nn.Module, names: set[str]) -> dict[nn.Module, dict[str, str]] | None:
    """Leaf module → {attribute: full name} of its parameters in θ; None when some parameter of θ
    is not held by exactly one leaf module (the one-pass Gram matrix then does not apply)."""
    owners: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        for attr, p in module.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append((path, module, attr))
    layers: dict[nn.Module, dict[str, str]] = {}
    found: set[str] = set()
    for held in owners.values():
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


def _layer_gradients(
    module: nn.Module, own: dict[str, Tensor], a: Tensor, cot: Tensor
) -> dict[str, Tensor]:
    """The layer's parameter gradients for each cotangent cot [k, *out]: name → [k, *p]."""
    _, pullback = vjp(lambda q: functional_call(module, q, (a,)), own)
    (grads,) = vmap(pullback)(cot)
    return grads


def group_layerwise(
    model: nn.Module,
    params: Mapping[str, Tensor],
    losses: Callable[[Mapping[str, Tensor]], Tensor],
    averaging: Tensor,
) -> tuple[Tensor, Callable[[Tensor], dict[str, Tensor]]]:
    """(K [k, k] float64 with K_gh = ⟨∇L_g, ∇L_h⟩, α [k] ↦ d = Σ_g α_g ∇L_g).

    Args:
        model: the module whose leaf layers hold θ (`group_layers` must accept it).
        params: θ, name → tensor (the names of ``model.named_parameters()``).
        losses: θ ↦ the per-example losses ℓ [N] (one forward of ``model``).
        averaging: A [N, k], L_g = Σ_b A_bg ℓ_b.

    One forward and one backward (to the layer outputs) here; ``direction`` runs the second
    backward (to θ, once) and checks ‖d‖² against αᵀKα.
    """
    layers = group_layers(model, set(params))
    if layers is None:
        raise ValueError("the one-pass group Gram matrix needs every parameter in one leaf layer")
    p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad(), _Capture(layers) as cap:
        ell = losses(p)
        if ell.ndim != 1 or ell.shape[0] != averaging.shape[0]:
            raise ValueError(f"losses must be [N] = [{averaging.shape[0]}], got {tuple(ell.shape)}")
        missing = [type(m).__name__ for m in layers if m not in cap.outputs]
        if missing:
            raise ValueError(f"layers {missing} did not run on θ in the group Gram pass")
        outs = list(cap.outputs.values())
        grads = torch.autograd.grad(ell.sum(), outs, retain_graph=True, allow_unused=True)
    k = averaging.shape[1]
    gram = torch.zeros(k, k, dtype=ACC, device=averaging.device)
    for (module, out), c in zip(cap.outputs.items(), grads):  # in forward order, as asked
        a, attrs = cap.inputs[module], layers[module]
        c = torch.zeros_like(out) if c is None else c
        shape = (k, c.shape[0]) + (1,) * (c.ndim - 1)
        cot = averaging.T.to(c.dtype).reshape(shape) * c  # [k, N, *out]
        own = {attr: p[full].detach() for attr, full in attrs.items()}
        for g in _layer_gradients(module, own, a, cot).values():
            flat = g.reshape(k, -1).to(ACC)
            gram += flat @ flat.T

    def direction(alpha: Tensor) -> dict[str, Tensor]:
        w = averaging.to(ACC) @ alpha.to(device=averaging.device, dtype=ACC)
        d = torch.autograd.grad(ell, list(p.values()), grad_outputs=w.to(ell.dtype))
        return dict(zip(p, d))

    return gram, direction
