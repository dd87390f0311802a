"""`KnownProblem` (a problem with exact oracles), `ExactInner`, and the Danskin set at θ."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Generator, Tensor

from minimax.engine import Engine, engine_of
from minimax.engine.gradients import per_example_gradients
from minimax.inner import Candidates, InnerSolver, grid_axes
from minimax.minnorm import MinNormResult, min_norm_product_weights, min_norm_weights
from minimax.problem import Batch, Params, Problem
from minimax.sets import PerturbationSet
from minimax.testing.problems.base import DTYPE, fmt, fmt_params

__all__ = ["DanskinSet", "ExactInner", "KnownProblem", "danskin_set", "set_grid"]


# ------------------------------------------------------------------------------------------------
# KnownProblem and the exact inner solver
# ------------------------------------------------------------------------------------------------


class KnownProblem:
    """A min-max problem with exact oracles at any θ.

    Attributes:
        name: the family (``"max_of_pieces"``, ...).
        description: the formula of g and of the set S, for reports.
        problem: the minimax `Problem` (its own ``parameters()`` are θ).
        batch: the batch to pass with it.
        info: the family's numbers (sizes, the gap to the best non-maximizer, ...).

    Its methods:

        robust_loss(params) → float64 scalar R(θ) = mean_b max_δ g(θ, δ; b);
        per_example_loss(params) → [B] the per-example maxima;
        maximizers(params) → list of B tensors [k_b, *event] (ties within ``tie_rtol``);
        candidates / exact_inner → those maximizers as `Candidates` / as an `InnerSolver`.
    """

    def __init__(
        self,
        *,
        name: str,
        description: str,
        problem: Problem,
        batch: Batch,
        per_example_loss: Callable[[Mapping[str, Tensor]], Tensor],
        maximizers: Callable[[Mapping[str, Tensor]], list[Tensor]],
        call: str,
        info: dict[str, Any] | None = None,
        tie_rtol: float = 1e-9,
    ) -> None:
        self.name = name
        self.description = description
        self.problem = problem
        self.batch = batch
        self._per_example = per_example_loss
        self._maximizers = maximizers
        self._call = call
        self.info: dict[str, Any] = dict(info or {})
        self.tie_rtol = tie_rtol

    # -- basic accessors ---------------------------------------------------------------------
    def __repr__(self) -> str:
        return self._call

    @property
    def params(self) -> Params:
        """θ: the problem's parameters (live leaf tensors; detach before changing them)."""
        return self.problem.parameters()

    @property
    def batch_size(self) -> int:
        return int(self.problem.delta_shape(self.batch)[0])

    @property
    def event_shape(self) -> torch.Size:
        return self.problem.delta_shape(self.batch)[1:]

    def _p(self, params: Mapping[str, Tensor] | None) -> Params:
        p = self.params if params is None else params
        return {k: v.detach() for k, v in p.items()}

    # -- exact oracles -----------------------------------------------------------------------
    def per_example_loss(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        """[B] float64: max_δ g(θ, δ; b) for each example."""
        with torch.no_grad():
            return self._per_example(self._p(params)).to(DTYPE)

    def robust_loss(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        """R(θ) = mean_b max_δ g(θ, δ; b), exact, as a float64 scalar."""
        return self.per_example_loss(params).mean()

    def maximizers(self, params: Mapping[str, Tensor] | None = None) -> list[Tensor]:
        """Per example, the maximizers [k_b, *event] (their θ-gradients' hull is Danskin's)."""
        with torch.no_grad():
            return [m.to(DTYPE) for m in self._maximizers(self._p(params))]

    def tied(self, params: Mapping[str, Tensor] | None = None) -> bool:
        """True when some example has ≥ 2 maximizers at θ."""
        return any(len(m) >= 2 for m in self.maximizers(params))

    def candidates(
        self,
        params: Mapping[str, Tensor] | None = None,
        *,
        mode: Literal["product", "padded"] = "product",
        extra: Tensor | None = None,
        max_combinations: int = 4096,
    ) -> Candidates:
        """The exact maximizers as `Candidates` [m, B, *event].

        ``mode="product"``: every combination of the examples' maximizers (m = Π_b k_b), so that
        the hull of the m batch-mean gradients is the whole Danskin set of the batch loss (what a
        batch-level rule needs). ``mode="padded"``: m = max_b k_b, each example's list padded by
        repeating its last maximizer (enough for per-example rules). ``extra`` [e, B, *event]
        appends further candidates (e.g. `decoys`).
        """
        p = self._p(params)
        maxs = self.maximizers(p)
        if mode == "product":
            total = math.prod(len(m) for m in maxs)
            if total > max_combinations:
                raise ValueError(
                    f"{total} combinations of maximizers exceed max_combinations="
                    f"{max_combinations}: use mode='padded' (enough for per-example rules)"
                )
            combos = list(itertools.product(*[range(len(m)) for m in maxs]))
            deltas = torch.stack(
                [torch.stack([maxs[b][i] for b, i in enumerate(c)]) for c in combos]
            )
        elif mode == "padded":
            m = max(len(x) for x in maxs)
            deltas = torch.stack(
                [torch.stack([x[min(i, len(x) - 1)] for x in maxs]) for i in range(m)]
            )
        else:
            raise ValueError(f"mode must be 'product' or 'padded', got {mode!r}")
        ref = self.problem.reference(self.batch)
        deltas = deltas.to(dtype=ref.dtype, device=ref.device)
        if extra is not None:
            deltas = torch.cat([deltas, extra.to(dtype=ref.dtype, device=ref.device)])
        with torch.no_grad():
            values = engine_of(self.problem).values(p, deltas, self.batch)
        return Candidates(deltas, values.detach())

    def exact_inner(
        self,
        *,
        mode: Literal["product", "padded"] = "product",
        extra: Tensor | None = None,
    ) -> ExactInner:
        """An `InnerSolver` that returns exactly the maximizer set (see `candidates`)."""
        return ExactInner(self, mode=mode, extra=extra)

    def decoys(
        self,
        n: int = 2,
        *,
        below: float = 0.1,
        params: Mapping[str, Tensor] | None = None,
        points: int = 7,
        seed: int = 0,
    ) -> Tensor:
        """n points of S per example whose value is below the max by more than ``below``.

        The n lowest points of a pool: a grid of the set (``points`` per axis, for boxes and L∞
        balls of at most 3 entries) and 64 random points of S drawn with ``seed``; [n, B, *event]
        (repeated when an example has fewer). Raises ValueError when some example has none
        (every point of the pool is within ``below`` of the max).
        """
        p = self._p(params)
        shape = self.problem.delta_shape(self.batch)
        b, event = shape[0], shape[1:]
        ref = self.problem.reference(self.batch)
        gen = torch.Generator().manual_seed(seed)
        parts = [
            self.problem.perturbation.random(
                (64, *shape), generator=gen, dtype=DTYPE, event_ndim=len(event)
            )
        ]
        grid = set_grid(self.problem.perturbation, event, points)
        if grid.numel():
            parts.insert(0, grid.reshape(-1, 1, *event).expand(-1, b, *event))
        pool_t = torch.cat(parts).to(dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            vals = engine_of(self.problem).values(p, pool_t, self.batch)  # [N, B]
        best = self.per_example_loss(p).to(vals.dtype)
        out = []
        for j in range(b):
            ok = torch.nonzero(vals[:, j] < best[j] - below).flatten()
            if len(ok) == 0:
                raise ValueError(
                    f"example {j} has no point more than {below} below its max {float(best[j]):.6g}"
                )
            order = ok[vals[ok, j].argsort()]  # lowest first
            out.append(pool_t[order[torch.arange(n) % len(order)], j])
        return torch.stack(out, dim=1)

    def describe(self, params: Mapping[str, Tensor] | None = None) -> str:
        """A multi-line report: the problem, θ, R(θ) and the maximizers with their values."""
        p = self._p(params)
        lines = [repr(self), f"  {self.description}", f"  θ = {fmt_params(p)}"]
        try:
            lines.append(f"  R(θ) = {float(self.robust_loss(p)):.10g}")
            maxs = self.maximizers(p)
            vals = self.candidates(p, mode="padded").values
            for j, m in enumerate(maxs):
                pts = ", ".join(fmt(d.reshape(-1)) for d in m)
                lines.append(
                    f"  example {j}: {len(m)} maximizer(s) δ ∈ {{{pts}}}, "
                    f"g = {float(vals[0, j]):.10g}"
                )
        except (ValueError, RuntimeError) as err:  # pragma: no cover - a report must not crash
            lines.append(f"  (oracles failed: {err})")
        return "\n".join(lines)

    def fingerprint(self) -> tuple[Any, ...]:
        """Hashable data that identifies the problem (its rebuild call and θ)."""
        return (
            self._call,
            tuple((k, tuple(v.detach().reshape(-1).tolist())) for k, v in self.params.items()),
        )


def set_grid(S: PerturbationSet, event: torch.Size, points: int) -> Tensor:
    """A grid of S ([G, *event]) for boxes and L∞ balls with ≤ 3 entries, else an empty tensor."""
    if event.numel() > 3:
        return torch.empty(0, dtype=DTYPE)
    try:
        axes = grid_axes(S, event, points, DTYPE)
    except ValueError:  # not a box or a plain L∞ ball: no grid
        return torch.empty(0, dtype=DTYPE)
    if not axes:
        return torch.zeros(1, *event, dtype=DTYPE)
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    return mesh.reshape(-1, *event)


class ExactInner(InnerSolver):
    """An inner solver that returns a `KnownProblem`'s exact maximizers (no inner-solver error).

    ``mode`` and ``extra`` as in `KnownProblem.candidates`. The problem and batch passed to
    ``__call__`` must be the known problem's.
    """

    def __init__(
        self,
        known: KnownProblem,
        *,
        mode: Literal["product", "padded"] = "product",
        extra: Tensor | None = None,
    ) -> None:
        super().__init__(restarts=1, random_start=False)  # m is set by each call's maximizers
        self.known = known
        self.mode: Literal["product", "padded"] = mode
        self.extra = extra

    def __repr__(self) -> str:
        extra = "" if self.extra is None else f", extra={self.extra.shape[0]}"
        return f"ExactInner({self.known.name}, mode={self.mode!r}{extra})"

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: Generator | None
    ) -> Candidates:
        if engine.problem is not self.known.problem:
            raise ValueError("ExactInner only knows the maximizers of its own KnownProblem")
        return self.known.candidates(params, mode=self.mode, extra=self.extra)


# ------------------------------------------------------------------------------------------------
# The Danskin set at θ
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DanskinSet:
    """The θ-gradients at the maximizers: Danskin's set of R = mean_b max g is the Minkowski sum
    over examples b of conv{gradients[b]} (each gradient already divided by B).

    gradients: B tensors [k_b, P] float64, P the number of entries of θ (flattened in ``names``
        order); values: B tensors [k_b], g at the maximizers; maximizers: B tensors [k_b, *event].
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    maximizers: list[Tensor]
    values: list[Tensor]
    gradients: list[Tensor]

    def flatten(self, vector: Mapping[str, Tensor]) -> Tensor:
        """A dict shaped like θ → a flat float64 vector [P] (in ``names`` order)."""
        missing = [k for k in self.names if k not in vector]
        if missing:
            raise ValueError(f"the direction has no entries for parameters {missing}")
        return torch.cat([vector[k].detach().to("cpu", DTYPE).reshape(-1) for k in self.names])

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        out, i = {}, 0
        for k, s in zip(self.names, self.shapes):
            n = s.numel()
            out[k] = flat[i : i + n].reshape(s)
            i += n
        return out

    def slopes(self, h: Mapping[str, Tensor]) -> list[Tensor]:
        """⟨h, ∇θ g(θ, δ)/B⟩ for each example's maximizers: B tensors [k_b]."""
        v = self.flatten(h)
        return [g @ v for g in self.gradients]

    def directional_derivative(self, h: Mapping[str, Tensor]) -> Tensor:
        """R'(θ; h) = Σ_b max_{δ ∈ S⋆_b} ⟨h, ∇θ g(θ, δ; b)⟩ / B (Danskin's formula), float64."""
        return torch.stack([s.max() for s in self.slopes(h)]).sum()

    def min_norm(self) -> tuple[dict[str, Tensor], Tensor, MinNormResult]:
        """γ⋆, the min-norm element of the set, its norm and the solver's result.

        One example: `min_norm_weights` over its gradients; several: `min_norm_product_weights`
        over the stacked gradients, one simplex block per example (the Minkowski sum).
        """
        stacked = torch.cat(self.gradients)
        k = stacked @ stacked.T
        if len(self.gradients) == 1:
            res = min_norm_weights(k)
        else:
            res = min_norm_product_weights(k, [len(g) for g in self.gradients])
        gamma = res.weights.to(DTYPE) @ stacked
        return self.unflatten(gamma), gamma.norm(), res


def danskin_set(
    problem_or_known: Problem | KnownProblem,
    params: Mapping[str, Tensor] | None = None,
    *,
    batch: Batch = None,
    maximizers: Sequence[Tensor] | None = None,
) -> DanskinSet:
    """The `DanskinSet` at θ over the given maximizers (default: the known problem's exact ones)."""
    if isinstance(problem_or_known, KnownProblem):
        known: KnownProblem | None = problem_or_known
        problem, batch = problem_or_known.problem, problem_or_known.batch
    else:
        known, problem = None, problem_or_known
    p = {k: v.detach() for k, v in (problem.parameters() if params is None else params).items()}
    if maximizers is None:
        if known is None:
            raise ValueError("pass maximizers= (per example, [k_b, *event]) for a plain Problem")
        maximizers = known.maximizers(p)
    shape = problem.delta_shape(batch)
    b = shape[0]
    if len(maximizers) != b:
        raise ValueError(f"maximizers has {len(maximizers)} entries, the batch has B = {b}")
    ref = problem.reference(batch)
    maxs = [
        torch.as_tensor(m).to(dtype=ref.dtype, device=ref.device).reshape(-1, *shape[1:])
        for m in maximizers
    ]
    if any(len(m) == 0 for m in maxs):
        raise ValueError("every example needs at least one maximizer")
    width = max(len(m) for m in maxs)
    deltas = torch.stack([torch.stack([m[min(i, len(m) - 1)] for m in maxs]) for i in range(width)])
    engine = engine_of(problem)
    with engine.uncounted():
        grads = per_example_gradients(engine, p, batch, deltas)  # [M, B, *p] (÷ B)
        with torch.no_grad():
            vals = engine.values(p, deltas, batch)
    names = tuple(p)
    flat = torch.cat([grads[k].reshape(width, b, -1).to("cpu", DTYPE) for k in names], dim=-1)
    return DanskinSet(
        names=names,
        shapes=tuple(p[k].shape for k in names),
        maximizers=[m.to("cpu", DTYPE) for m in maxs],
        values=[vals[: len(m), j].to("cpu", DTYPE) for j, m in enumerate(maxs)],
        gradients=[flat[: len(m), j] for j, m in enumerate(maxs)],
    )
