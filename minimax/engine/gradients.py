"""Parameter gradients at candidates (torch.func), Gram matrices in float64, combinations.

Shapes: a *stack* of gradients is a dict name → [n, *param.shape] (n vectors shaped like θ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor
from torch.func import grad, jacrev, vmap

from minimax.engine.scoring import ScoringGraph
from minimax.problem import Batch, Problem

if TYPE_CHECKING:
    from minimax.engine.core import Engine

__all__ = [
    "batch_gradient",
    "candidate_gradients",
    "combine",
    "flat_norm",
    "gram",
    "graph_gradients",
    "inner_products",
    "per_example_gradients",
]

Stack = dict[str, Tensor]
GradientMode = Literal["auto", "vmap", "loop"]


def _resolve(mode: str, deltas: Tensor) -> str:
    """``"auto"``: a loop on CPU (as fast as vmap, less memory: benchmarks/step.py), else vmap."""
    if mode == "auto":
        return "loop" if deltas.device.type == "cpu" else "vmap"
    if mode not in ("vmap", "loop"):
        raise ValueError(f"mode must be 'auto', 'vmap' or 'loop', got {mode!r}")
    return mode


def _engine(target: Problem | Engine) -> Engine:
    """The engine of ``target`` (its default engine for a bare problem)."""
    from minimax.engine.core import as_engine  # core imports this module

    return as_engine(target)


def _detached(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in params.items()}


def batch_gradient(
    problem: Problem | Engine, params: Mapping[str, Tensor], batch: Batch, delta: Tensor
) -> dict[str, Tensor]:
    """∇_θ mean_b g(θ, δ_b; batch_b) at one candidate δ [B, *event] (one forward + backward)."""
    engine = _engine(problem)
    p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad():
        loss = engine.values(p, delta, batch).mean()
        grads = torch.autograd.grad(loss, list(p.values()), allow_unused=True)
    engine.count(backward=1)
    return {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(p.items(), grads)}


def graph_gradients(engine: Engine, graph: ScoringGraph, indices: Sequence[int]) -> Stack:
    """g_i = ∇_θ mean_b g(θ, δ_{i,b}; batch_b) for the candidates ``indices``, by one backward
    through each one's scoring forward (no forward of its own): → [len(indices), *p]."""
    leaves = list(graph.params.values())
    rows = []
    for i in indices:
        grads = torch.autograd.grad(graph.values[i].mean(), leaves, allow_unused=True)
        engine.count(backward=1)
        rows.append([torch.zeros_like(v) if g is None else g for v, g in zip(leaves, grads)])
    return {k: torch.stack([r[j] for r in rows]) for j, k in enumerate(graph.params)}


def candidate_gradients(
    problem: Problem | Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    deltas: Tensor,
    *,
    mode: GradientMode = "auto",
) -> Stack:
    """g_i = ∇_θ mean_b g(θ, δ_{i,b}; batch_b) for each candidate: deltas [m, B, *event] → [m, *p].

    ``mode="vmap"`` vectorizes over candidates with `torch.func` (each candidate still has its own
    forward, so no batch statistics are shared); ``"loop"`` runs one backward per candidate and is
    also the fallback where vmap cannot run (with a one-time `VectorizationWarning`);
    ``"auto"`` (default): the loop on CPU, else vmap.
    """
    engine = _engine(problem)
    m = deltas.shape[0]
    p = _detached(params)
    if _resolve(mode, deltas) == "vmap" and engine.can_vmap("candidate_gradients"):
        try:
            fn = grad(lambda q, d: engine.objective(q, d, batch).mean())
            out = vmap(fn, in_dims=(None, 0))(p, deltas)
            engine.count(forward=m, backward=m)
            return out
        except (RuntimeError, NotImplementedError, ValueError) as err:
            engine.vmap_failed("candidate_gradients", err)  # e.g. an op without a batching rule
    rows = [batch_gradient(engine, p, batch, deltas[i]) for i in range(m)]
    return {k: torch.stack([r[k] for r in rows]) for k in p}


def per_example_gradients(
    problem: Problem | Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    deltas: Tensor,
    *,
    mode: GradientMode = "vmap",
) -> Stack:
    """g_{i,b} = ∇_θ g(θ, δ_{i,b}; batch_b) / B: deltas [m, B, *event] → [m, B, *p].

    The 1/B makes Σ_b g_{i,b} the gradient of the batch mean. Computed as the Jacobian of the
    per-example values of each candidate's forward (`jacrev`), vmapped over candidates; a loop of
    B backward passes per candidate where vmap cannot run (with a one-time `VectorizationWarning`)
    or with ``mode="loop"``.
    """
    engine = _engine(problem)
    m, b = deltas.shape[:2]
    p = _detached(params)
    vectorized = mode == "auto" or _resolve(mode, deltas) == "vmap"
    if vectorized and engine.can_vmap("per_example_gradients"):
        try:
            fn = jacrev(lambda q, d: engine.objective(q, d, batch) / b)
            out = vmap(fn, in_dims=(None, 0))(p, deltas)
            engine.count(forward=m, backward=m * b)
            return out
        except (RuntimeError, NotImplementedError, ValueError) as err:
            engine.vmap_failed("per_example_gradients", err)
    out_rows: dict[str, list[Tensor]] = {k: [] for k in p}
    for i in range(m):
        q = {k: v.requires_grad_(True) for k, v in _detached(p).items()}
        with torch.enable_grad():
            values = engine.values(q, deltas[i], batch) / b
            for j in range(b):
                gs = torch.autograd.grad(
                    values[j], list(q.values()), retain_graph=True, allow_unused=True
                )
                for (k, v), g in zip(q.items(), gs):
                    out_rows[k].append(torch.zeros_like(v) if g is None else g)
        engine.count(backward=b)
    return {k: torch.stack(v).reshape(m, b, *p[k].shape) for k, v in out_rows.items()}


def gram(stack: Mapping[str, Tensor], lead: int = 1) -> Tensor:
    """K = G Gᵀ in float64 for a stack of n vectors ([*lead_dims, *p] per entry, flattened to n).

    ``lead`` is the number of leading dims that index vectors (1 for [m, *p], 2 for [m, B, *p]).
    Accumulated parameter by parameter, so no float64 copy of all of θ is ever held.
    """
    k: Tensor | None = None
    for v in stack.values():
        n = v.shape[:lead].numel()
        flat = v.reshape(n, -1).to(torch.float64)
        part = flat @ flat.T
        k = part if k is None else k + part
    if k is None:
        raise ValueError("gram needs at least one parameter tensor")
    return k


def inner_products(
    stack: Mapping[str, Tensor], vector: Mapping[str, Tensor], lead: int = 1
) -> Tensor:
    """⟨g_i, v⟩ in float64 for each stacked vector g_i: → [n] (n = prod of lead dims)."""
    out: Tensor | None = None
    for name, v in stack.items():
        n = v.shape[:lead].numel()
        part = v.reshape(n, -1).to(torch.float64) @ vector[name].reshape(-1).to(torch.float64)
        out = part if out is None else out + part
    assert out is not None
    return out


def combine(stack: Mapping[str, Tensor], weights: Tensor, lead: int = 1) -> dict[str, Tensor]:
    """d = Σ_i α_i g_i: weights [n] over the n stacked vectors → a dict shaped like θ."""
    out = {}
    for name, v in stack.items():
        n = v.shape[:lead].numel()
        flat = v.reshape(n, -1)
        d = weights.to(torch.float64) @ flat.to(torch.float64)
        out[name] = d.to(v.dtype).reshape(v.shape[lead:])
    return out


def flat_norm(vector: Mapping[str, Tensor]) -> Tensor:
    """‖v‖ over all entries of a dict of tensors, in float64 (scalar). Scaled by the largest
    magnitude first, so that neither huge (1e200) nor tiny (1e-300) entries overflow or
    underflow; no host sync."""
    parts = [t.to(torch.float64).reshape(-1) for t in vector.values()]
    if not parts:
        return torch.zeros((), dtype=torch.float64)
    scale = torch.stack([p.abs().max() if p.numel() else p.new_zeros(()) for p in parts]).max()
    safe = torch.where((scale > 0) & torch.isfinite(scale), scale, torch.ones_like(scale))
    total = torch.stack([((p / safe) ** 2).sum() for p in parts]).sum()
    finite_scale = (scale > 0) & torch.isfinite(scale)
    return torch.where(finite_scale, safe * total.sqrt(), scale)
