"""The per-example Gramian without per-example gradients, and directions by one weighted backward.

Row (b, i) is r_{b,i} = ∇θ g(θ, δ_{i,b}; x_b) / B, for the candidates kept by ``mask`` [B, m],
ordered example by example (b, then i). Public functions:

- `per_example_gram(problem, params, batch, deltas, mask=None, mode="auto") -> [n, n]` float64,
  K_rs = ⟨r_r, r_s⟩. ``"layerwise"`` builds K layer by layer from each layer's inputs and output
  gradients in one forward + backward over the n candidate rows (`minimax.engine.gramian.layers`);
  ``"materialized"`` forms the n·P per-example gradients (the reference); ``"auto"``: layerwise for
  a `ModuleProblem` whose parameterised modules all have a layer rule, else materialized.
- `weighted_gradient(problem, params, batch, deltas, weights [m, B]) -> dict like θ`:
  d = Σ α_{i,b} r_{b,i}, the gradient of Σ α_{i,b} g(θ, δ_{i,b}; x_b) / B: one backward over the
  rows with α ≠ 0 (in chunks of ``chunk`` rows), never the m·B gradients.
- `layerwise_supported(problem, params)`: whether ``"auto"`` picks the layerwise path.
- `check_direction(k, alpha, d)`: raises when ‖d‖² ≠ αᵀKα (a Gramian that disagrees with autograd).
- `per_example_layerwise` / `batch_layerwise`: K and α ↦ d for DDi's Gram-rule template (K of the
  per-example rows, or of the m batch-mean gradients), d checked against K.
- `gramian(engine, ...)`: the one place that chooses among them (`Engine.gramian`).

Every function takes an engine, or a problem (then its default engine, `minimax.extend.engine_of`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from minimax import checks
from minimax.engine.gradients import _engine, combine, flat_norm, gram, per_example_gradients
from minimax.engine.gramian.group import group_layers, group_layerwise
from minimax.engine.gramian.hooked import candidate_rows, layerwise_gram, unsupported_modules
from minimax.engine.gramian.layers import LAYER_RULES, Plan
from minimax.problem import Batch, ModuleProblem, Problem

if TYPE_CHECKING:
    from minimax.engine.core import Engine

__all__ = [
    "LAYER_RULES",
    "MODES",
    "Plan",
    "batch_layerwise",
    "check_direction",
    "gramian",
    "layerwise_supported",
    "per_example_gram",
    "per_example_layerwise",
    "resolve_mode",
    "weighted_gradient",
]

MODES = ("auto", "layerwise", "materialized")
Combine = Callable[[Tensor], dict[str, Tensor]]  # weights α [n] ↦ d = Σ α_i g_i, a dict like θ


def layerwise_supported(problem: Problem | Engine, params: Mapping[str, Tensor]) -> bool:
    """True for a ModuleProblem, examples not coupled, whose parameterised modules have rules."""
    problem = _engine(problem).problem
    if not isinstance(problem, ModuleProblem) or problem.examples_coupled:
        return False
    return not unsupported_modules(problem.model, set(params))


def resolve_mode(mode: str, problem: Problem | Engine, params: Mapping[str, Tensor]) -> str:
    """``"auto"`` → "layerwise" where supported, else "materialized"; checks the name."""
    checks.choice("gramian", mode, MODES)
    if mode == "auto":
        return "layerwise" if layerwise_supported(problem, params) else "materialized"
    return mode


def _full_mask(deltas: Tensor, mask: Tensor | None) -> Tensor:
    m, b = deltas.shape[:2]
    if mask is None:
        return torch.ones(b, m, dtype=torch.bool, device=deltas.device)
    if mask.shape != (b, m) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor [B, m] = [{b}, {m}] (example, candidate), got "
            f"{mask.dtype} {tuple(mask.shape)}"
        )
    return mask


def per_example_gram(
    problem: Problem | Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    deltas: Tensor,
    mask: Tensor | None = None,
    mode: str = "auto",
    *,
    plan: Plan | None = None,
) -> Tensor:
    """K [n, n] float64 of the kept rows r_{b,i} = ∇θ g(θ, δ_{i,b}; x_b) / B.

    deltas [m, B, *event]; mask [B, m] bool (None keeps all, n = m·B), rows ordered (b, i).
    ``plan`` sets the layer strategy ("auto", "ghost", "materialized") and the block budget.
    """
    engine = _engine(problem)
    mask = _full_mask(deltas, mask)
    b = deltas.shape[1]
    if resolve_mode(mode, engine, params) == "materialized":
        if engine.problem.examples_coupled:
            raise ValueError(
                f"in {engine.problem!r} the examples are coupled (train-mode BatchNorm "
                "statistics): per-example gradients are not defined"
            )
        grads = per_example_gradients(engine, params, batch, deltas)  # [m, B, *p]
        flat = mask.reshape(-1).to(deltas.device)
        kept = {k: v.transpose(0, 1).reshape(-1, *v.shape[2:])[flat] for k, v in grads.items()}
        return gram(kept)
    delta_rows, rows, _ = candidate_rows(engine.problem, batch, deltas, mask)
    k = layerwise_gram(engine, params, delta_rows, rows, b, plan or Plan())
    passes = math.ceil(delta_rows.shape[0] / b)
    engine.count(forward=passes, backward=passes)
    return k


def weighted_gradient(
    problem: Problem | Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    deltas: Tensor,
    weights: Tensor,
    *,
    chunk: int | None = None,
) -> dict[str, Tensor]:
    """d = Σ_{i,b} α_{i,b} ∇θ g(θ, δ_{i,b}; x_b) / B for weights [m, B] → a dict shaped like θ.

    A ModuleProblem stacks the rows with α ≠ 0 as one batch, ``chunk`` rows per backward
    (default B); other problems run one backward per candidate with a nonzero weight.
    """
    engine = _engine(problem)
    problem = engine.problem
    m, b = deltas.shape[:2]
    if not isinstance(weights, Tensor) or weights.shape != (m, b):
        got = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(f"weights must be a tensor [m, B] = [{m}, {b}], got {got}")
    if not bool(torch.isfinite(weights).all()):
        raise ValueError(
            "weights contain NaN or Inf: a weighted gradient of them would be non-finite; check "
            "the rule or solver that produced them (a min-norm result carries its KKT residual)"
        )
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be a positive number of rows or None, got {chunk!r}")
    p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    total = {k: torch.zeros_like(v) for k, v in p.items()}
    w = weights.to(deltas.device)
    if isinstance(problem, ModuleProblem) and not problem.examples_coupled:
        delta_rows, (x, y), _ = candidate_rows(problem, batch, deltas, (w != 0).T)
        alpha = w.T[w.T != 0]
        step = chunk or b
        pieces = [
            (delta_rows[s : s + step], (x[s : s + step], y[s : s + step]), alpha[s : s + step])
            for s in range(0, delta_rows.shape[0], step)
        ]
    else:
        pieces = [(deltas[i], batch, w[i]) for i in range(m) if bool((w[i] != 0).any())]
    for delta, piece, a in pieces:
        with torch.enable_grad():
            values = engine.objective(p, delta, piece)
            loss = (values * a.to(values.dtype)).sum() / b
            grads = torch.autograd.grad(loss, list(p.values()), allow_unused=True)
        for acc, g in zip(total.values(), grads):
            if g is not None:
                acc += g
        engine.count(forward=1, backward=1)
    return total


def check_direction(k: Tensor, alpha: Tensor, d: Mapping[str, Tensor], what: str) -> None:
    """Raise if ‖d‖² and αᵀKα disagree beyond rounding: the Gramian K and the direction d from
    autograd describe different gradients (a parameter used outside its module, dropout, ...)."""
    sq = float(flat_norm(d)) ** 2
    quad = float(alpha @ k @ alpha)
    scale = float(alpha @ k.diagonal().clamp_min(0).sqrt()) ** 2
    first = next(iter(d.values()))
    tol = {torch.float64: 1e-8, torch.float32: 1e-3}.get(first.dtype, 3e-2)
    tf32 = torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
    if first.device.type == "cuda" and first.dtype == torch.float32 and tf32:
        tol = 1e-2  # TF32 convolutions round to ~1e-3 relative
    if abs(sq - quad) > tol * max(scale, 1e-300):
        raise RuntimeError(
            f"{what}: ‖d‖² = {sq:.6g} from autograd but αᵀKα = {quad:.6g} from the layerwise "
            "Gramian: some parameter's gradient is not what the layer rules assume (a parameter "
            "used outside its module's forward, an in-place change of a layer output, random "
            "layers such as dropout). Use DDi(gramian='materialized')."
        )


def per_example_layerwise(
    problem: Problem | Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    deltas: Tensor,
    mask: Tensor,
    what: str,
) -> tuple[Tensor, Combine]:
    """(K [n, n] of the rows r_{b,i} kept by ``mask`` [B, m], α [n] ↦ d by one weighted backward).

    d is checked against K (`check_direction`); ``what`` names the caller in its error.
    """
    k = per_example_gram(problem, params, batch, deltas, mask, "layerwise")
    m, b = deltas.shape[:2]

    def direction(alpha: Tensor) -> dict[str, Tensor]:
        full = torch.zeros(b, m, dtype=torch.float64, device=deltas.device)
        full[mask.to(deltas.device)] = alpha.to(deltas.device)  # rows are (b, i) row-major
        d = weighted_gradient(problem, params, batch, deltas, full.T)
        check_direction(k, alpha, d, what)
        return d

    return k, direction


def batch_layerwise(
    problem: Problem | Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    deltas: Tensor,
    what: str,
) -> tuple[Tensor, Combine]:
    """(K [m, m] of the batch-mean gradients ḡ_i = Σ_b r_{b,i}, α [m] ↦ d by one backward).

    K_ij = Σ_{b,b'} ⟨r_{b,i}, r_{b',j}⟩, summed from the per-example Gramian of the m·B rows.
    """
    m, b = deltas.shape[:2]
    rows = per_example_gram(problem, params, batch, deltas, None, "layerwise")
    k = rows.reshape(b, m, b, m).sum(dim=(0, 2))  # rows ordered (example, candidate)

    def direction(alpha: Tensor) -> dict[str, Tensor]:
        weights = alpha.to(deltas.device).unsqueeze(1).expand(m, b)
        d = weighted_gradient(problem, params, batch, deltas, weights)
        check_direction(k, alpha, d, what)
        return d

    return k, direction


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} GiB"


def _materialized(
    engine: Engine, params: Mapping[str, Tensor], batch: Batch, deltas: Tensor, mask: Tensor
) -> tuple[Tensor, Combine]:
    """The reference: K of the kept per-example gradients and α ↦ d = Σ α_r r_r, ordered
    (example, candidate), under the engine's memory budget."""
    m, b = deltas.shape[:2]
    numel = sum(v.numel() for v in params.values())
    need = m * b * numel * next(iter(params.values())).element_size()
    if need > engine.memory_budget:
        raise MemoryError(
            f"per-example DDi needs {_bytes(need)} of per-example gradients "
            f"(m={m} × B={b} × {numel} parameters), over the budget of "
            f"{_bytes(engine.memory_budget)}: use DDi(per_example=False), "
            "Engine(gramian='layerwise'), a smaller batch, or raise Engine(memory_budget=...)"
        )
    grads = per_example_gradients(engine, params, batch, deltas)  # [m, B, *p]
    flat_mask = mask.reshape(-1)  # reorder to [B·m, *p] (example, candidate), keep the mask
    stack = {k: v.transpose(0, 1).reshape(b * m, *v.shape[2:])[flat_mask] for k, v in grads.items()}
    return gram(stack), lambda alpha: combine(stack, alpha)


def _group_gramian(
    engine: Engine, params: Mapping[str, Tensor], batch: Batch, deltas: Tensor, idx: Tensor
) -> tuple[Tensor, Combine] | None:
    """K and α ↦ d of a worst-group problem's group-mean gradients from one forward and one
    backward (`minimax.engine.gramian.group`), where it applies: a `WorstGroupProblem` of
    `~WorstGroupProblem.from_module`, kept candidates that are distinct vertices e_g of groups
    present in the batch, one process, ``gramian`` not ``"materialized"``, and every parameter in
    one leaf layer (no train-mode BatchNorm). None elsewhere (the generic path)."""
    from minimax.groups import WorstGroupProblem  # groups imports the inner solvers

    problem = engine.problem
    if not isinstance(problem, WorstGroupProblem) or problem.model is None:
        return None
    if engine.gramian_mode == "materialized" or engine.communicator.active:
        return None
    kept = deltas[idx.to(deltas.device)]  # [n, 1, k]
    if kept.ndim != 3 or kept.shape[1] != 1 or kept.shape[2] != problem.num_groups:
        return None
    rows = kept[:, 0]
    if not bool(((rows == 0) | (rows == 1)).all() and (rows.sum(-1) == 1).all()):
        return None  # mixed strategies: not group-mean gradients
    groups = [int(g) for g in rows.argmax(-1).tolist()]
    counts = problem.counts(batch)
    if len(set(groups)) != len(groups) or any(int(counts[g]) == 0 for g in groups):
        return None
    if group_layers(problem.model, set(params)) is None:
        return None
    _, labels = problem._split(batch)
    k, direction = group_layerwise(
        problem.model,
        params,
        lambda p: problem.per_example_losses(p, batch),
        labels,
        groups,
    )
    engine.count(forward=1, backward=1)
    return k, direction


def gramian(
    engine: Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    deltas: Tensor,
    mask: Tensor,
    *,
    per_example: bool,
    what: str,
) -> tuple[Tensor, Combine]:
    """(K float64, α ↦ d) for the candidates kept by ``mask``, the one choice of how.

    Per example (``per_example=True``): mask [B, m], the rows r_{b,i} = ∇θ g(θ, δ_{i,b}) / B
    ordered (example, candidate), layerwise or materialized (`Engine.gramian`). Batch level:
    mask [m], the batch-mean gradients ḡ_i: for a worst-group problem's pure strategies the
    one-pass group Gram matrix (`_group_gramian`: one forward, one backward, whatever the
    number of groups), else from the layerwise per-example Gramian (only with
    ``Engine(gramian="layerwise")``) or from the gradients themselves, through the kept scoring
    graph where there is one. ``what`` names the caller in errors.
    """
    if not per_example:
        idx = torch.nonzero(mask).flatten()
        one_pass = _group_gramian(engine, params, batch, deltas, idx)
        if one_pass is not None:
            return one_pass
        if engine.gramian_mode != "layerwise":
            stack = engine.candidate_gradients(params, batch, deltas, idx.tolist())
            return gram(stack), lambda alpha: combine(stack, alpha)  # already over ranks
        if engine.communicator.active:
            raise ValueError(
                "Engine(gramian='layerwise') is not data-parallel at batch level: K of the "
                "global batch-mean gradients needs cross-rank inner products that per-rank "
                "Gramians lack. Use gramian='auto' or 'materialized' under torch.distributed"
            )
        return batch_layerwise(engine, params, batch, deltas[idx.to(deltas.device)], what)
    if engine.communicator.active:
        raise ValueError(
            "DDi(per_example=True) is not data-parallel: its QP couples the m·B per-example "
            "gradients of the whole batch, which every rank would need (an all-gather of "
            "m·B·P numbers). Use DDi(per_example=False) under torch.distributed, or one "
            "process"
        )
    if resolve_mode(engine.gramian_mode, engine, params) == "layerwise":
        return per_example_layerwise(engine, params, batch, deltas, mask, what)
    return _materialized(engine, params, batch, deltas, mask)
