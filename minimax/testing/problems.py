"""Min-max problems whose robust loss and maximizer sets are known exactly.

A `KnownProblem` bundles a minimax `Problem`, a batch, a point θ (``params``), and exact oracles:
``robust_loss(params)`` (R(θ) = mean_b max_δ g(θ, δ; b), float64) and ``maximizers(params)`` (per
example, a finite set of maximizers whose θ-gradients span the Danskin set by their convex hull).

Each family is built by a plain function whose arguments are the numbers that define it; the
problem's ``repr`` is that call, so a shrunk hypothesis example can be pasted into a regression
test as is:

- `counterexample` and `bilinear`: the two toy problems of the DDi paper;
- `max_of_pieces`: a max of k quadratic pieces, with chosen pieces tied at θ;
- `multilinear_box`: g multilinear in δ on a box (maximized at vertices);
- `linear_model`: a linear classifier with a linear or logistic loss under an L∞/L2/L1 ball
  (closed form through the dual norm);
- `tanh_network`: a one-hidden-layer tanh network (an ``nn.Module``) with a 1- or 2-dimensional δ,
  maximized by grid enumeration and local refinement.

All families compute in float64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Generator, Tensor, nn

from minimax.gradients import per_example_gradients
from minimax.inner import Candidates, InnerSolver, grid_axes, local_maxima
from minimax.minnorm import MinNormResult, min_norm_product_weights, min_norm_weights
from minimax.problem import Batch, FunctionProblem, ModuleProblem, Params, Problem
from minimax.sets import Box, L1Ball, L2Ball, LinfBall, PerturbationSet
from minimax.toys import bilinear_maximizers, counterexample_phi, counterexample_value, hats

__all__ = [
    "PROBLEMS",
    "DanskinSet",
    "ExactInner",
    "KnownProblem",
    "bilinear",
    "counterexample",
    "danskin_set",
    "linear_model",
    "make_problem",
    "max_of_pieces",
    "multilinear_box",
    "tanh_network",
]

DTYPE = torch.float64
Nested = Any  # a float or a nested list of floats (or a tensor)

# ------------------------------------------------------------------------------------------------
# formatting helpers
# ------------------------------------------------------------------------------------------------


def _lst(x: Nested) -> Any:
    """Nested python floats of x (for reprs that rebuild the problem)."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", DTYPE).tolist()
    if isinstance(x, (list, tuple)):
        return [_lst(v) for v in x]
    return float(x)


def _call(name: str, **kwargs: Any) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def fmt(t: Tensor | float, digits: int = 6) -> str:
    """A compact string of a tensor's values ``[1, -2.5]`` (or of a float)."""
    if isinstance(t, Tensor):
        if t.ndim == 0:
            return f"{float(t):.{digits}g}"
        return "[" + ", ".join(fmt(v, digits) for v in t) + "]"
    return f"{float(t):.{digits}g}"


def fmt_params(params: Mapping[str, Tensor], digits: int = 6) -> str:
    inner = ", ".join(f"{k!r}: {fmt(v.detach().cpu(), digits)}" for k, v in params.items())
    return "{" + inner + "}"


def _t(x: Nested) -> Tensor:
    return torch.as_tensor(_lst(x), dtype=DTYPE)


def _tie_tol(values: Tensor, rtol: float) -> Tensor:
    """Absolute tie tolerance rtol·max(1, |max|) per row of values [..., n] → [..., 1]."""
    best = values.max(dim=-1, keepdim=True).values
    return rtol * best.abs().clamp_min(1.0)


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

    Methods:
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
            values = self.problem.values(p, deltas, self.batch)
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
        parts = [self.problem.perturbation.random(
            (64, *shape), generator=gen, dtype=DTYPE, event_ndim=len(event)
        )]
        grid = _set_grid(self.problem.perturbation, event, points)
        if grid.numel():
            parts.insert(0, grid.reshape(-1, 1, *event).expand(-1, b, *event))
        pool_t = torch.cat(parts).to(dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            vals = self.problem.values(p, pool_t, self.batch)  # [N, B]
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
                lines.append(f"  example {j}: {len(m)} maximizer(s) δ ∈ {{{pts}}}, "
                             f"g = {float(vals[0, j]):.10g}")
        except (ValueError, RuntimeError) as err:  # pragma: no cover - a report must not crash
            lines.append(f"  (oracles failed: {err})")
        return "\n".join(lines)

    def fingerprint(self) -> tuple[Any, ...]:
        """Hashable data that identifies the problem (its rebuild call and θ)."""
        return (self._call, tuple((k, tuple(v.detach().reshape(-1).tolist()))
                                  for k, v in self.params.items()))


def _set_grid(S: PerturbationSet, event: torch.Size, points: int) -> Tensor:
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
        self, problem: Problem, params: Params, batch: Batch, generator: Generator | None, *,
        keep_graph: bool = False,
    ) -> Candidates:
        if problem is not self.known.problem:
            raise ValueError("ExactInner only knows the maximizers of its own KnownProblem")
        c = self.known.candidates(params, mode=self.mode, extra=self.extra)
        self.restarts = c.m
        return c


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
        """R'(θ; h) = Σ_b max_{δ ∈ S*_b} ⟨h, ∇θ g(θ, δ; b)⟩ / B (Danskin's formula), float64."""
        return torch.stack([s.max() for s in self.slopes(h)]).sum()

    def min_norm(self) -> tuple[dict[str, Tensor], Tensor, MinNormResult]:
        """γ*, the min-norm element of the set, its norm and the solver's result.

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
    maxs = [torch.as_tensor(m).to(dtype=ref.dtype, device=ref.device).reshape(-1, *shape[1:])
            for m in maximizers]
    if any(len(m) == 0 for m in maxs):
        raise ValueError("every example needs at least one maximizer")
    width = max(len(m) for m in maxs)
    deltas = torch.stack([torch.stack([m[min(i, len(m) - 1)] for m in maxs]) for i in range(width)])
    with problem.passes.paused():
        grads = per_example_gradients(problem, p, batch, deltas)  # [M, B, *p] (÷ B)
        with torch.no_grad():
            vals = problem.values(p, deltas, batch)
    names = tuple(p)
    flat = torch.cat([grads[k].reshape(width, b, -1).to("cpu", DTYPE) for k in names], dim=-1)
    return DanskinSet(
        names=names,
        shapes=tuple(p[k].shape for k in names),
        maximizers=[m.to("cpu", DTYPE) for m in maxs],
        values=[vals[: len(m), j].to("cpu", DTYPE) for j, m in enumerate(maxs)],
        gradients=[flat[: len(m), j] for j, m in enumerate(maxs)],
    )


# ------------------------------------------------------------------------------------------------
# Families
# ------------------------------------------------------------------------------------------------


def counterexample(x: Sequence[float] = (1.0, 0.0)) -> KnownProblem:
    """The DDi paper's counterexample: min_x max_{y∈[0,1]} f(x, y),

    f(x, y) = y(x₁² + (x₂+1)²) + (1−y)(x₁² + (x₂−1)²) − y(1−y),  φ(x) = x₁² + (|x₂| + 1)².

    At x₂ = 0 both y = 0 and y = 1 maximize (e.g. x = (1, 0): gradients (2, −2) and (2, 2)).
    """

    f = counterexample_value
    problem = FunctionProblem(
        lambda p, d, batch: f(p["x"], d[:, 0]),
        {"x": _t(x)},
        Box(0.0, 1.0),
        event_shape=(1,),
        name="counterexample",
    )

    def loss(p: Mapping[str, Tensor]) -> Tensor:
        return counterexample_phi(p["x"].to(DTYPE)).reshape(1)

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        z = p["x"].to(DTYPE)
        y0, y1 = f(z, torch.tensor(0.0, dtype=DTYPE)), f(z, torch.tensor(1.0, dtype=DTYPE))
        tol = 1e-9 * max(1.0, float(torch.maximum(y0, y1).abs()))
        top = float(torch.maximum(y0, y1))
        ys = [y for y, v in ((0.0, y0), (1.0, y1)) if float(v) >= top - tol]
        return [torch.tensor(ys, dtype=DTYPE).reshape(-1, 1)]

    return KnownProblem(
        name="counterexample",
        description="g(x, y) = y(x₁² + (x₂+1)²) + (1−y)(x₁² + (x₂−1)²) − y(1−y), y ∈ [0, 1]",
        problem=problem,
        batch=None,
        per_example_loss=loss,
        maximizers=maxs,
        call=_call("counterexample", x=_lst(x)),
        info={"k": 2, "dim": 2, "B": 1, "gap": math.inf},
    )


def bilinear(theta: float = 0.0) -> KnownProblem:
    """g(θ, δ) = θ·δ on δ ∈ [−1, 1]: R(θ) = |θ|; at θ = 0 both ends tie and θ is stationary."""
    problem = FunctionProblem(
        lambda p, d, batch: p["theta"][0] * d[:, 0],
        {"theta": _t([theta])},
        Box(-1.0, 1.0),
        event_shape=(1,),
        name="bilinear",
    )

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        return [bilinear_maximizers(float(p["theta"][0]))]

    return KnownProblem(
        name="bilinear",
        description="g(θ, δ) = θ·δ, δ ∈ [−1, 1]; R(θ) = |θ|",
        problem=problem,
        batch=None,
        per_example_loss=lambda p: p["theta"].to(DTYPE).abs().reshape(1),
        maximizers=maxs,
        call=_call("bilinear", theta=float(theta)),
        info={"k": 2, "dim": 1, "B": 1, "gap": abs(float(theta)) if theta else math.inf},
    )


def max_of_pieces(
    a: Nested = ((1.0, 1.0),),
    c: Nested = (((1.0,), (-1.0,)),),
    gaps: Nested = ((0.0, 0.0),),
    theta: Nested = (0.0,),
) -> KnownProblem:
    """A max of k quadratic pieces per example, tied at θ where ``gaps`` is 0.

    Pieces q_bj(θ') = ½ a_bj ‖θ' − c_bj‖² + e_bj with e_bj chosen so that q_bj(θ) = −gaps_bj: the
    pieces with gap 0 are the maximal, tied ones at the given θ. As a min-max problem δ ∈ [0, k−1]
    and g(θ', δ; b) = Σ_j hat_j(δ) q_bj(θ') (piecewise-linear interpolation between the integer
    nodes), so max_δ g = max_j q_bj and the maximizers are the nodes of the maximal pieces.

    Args: a [B][k] curvatures, c [B][k][n] centres, gaps [B][k] ≥ 0, theta [n] the point θ.
    """
    at, ct, gt, th = _t(a), _t(c), _t(gaps), _t(theta)
    if at.ndim != 2 or ct.ndim != 3 or gt.shape != at.shape or ct.shape[:2] != at.shape:
        raise ValueError("max_of_pieces needs a [B][k], c [B][k][n], gaps [B][k]")
    if th.shape != ct.shape[2:]:
        raise ValueError(f"theta must have {ct.shape[2]} entries")
    if bool((gt < 0).any()):
        raise ValueError("gaps must be ≥ 0")
    bsz, k, n = ct.shape
    level = 0.5 * at * ((th - ct) ** 2).sum(-1)
    e = -level - gt

    def pieces(theta_: Tensor) -> Tensor:
        return 0.5 * at * ((theta_ - ct) ** 2).sum(-1) + e  # [B, k]

    problem = FunctionProblem(
        lambda p, d, batch: (hats(d[:, 0], k) * (0.5 * batch[0] * ((p["theta"] - batch[1]) ** 2)
                                                  .sum(-1) + batch[2])).sum(-1),
        {"theta": th.clone()},
        Box(0.0, float(k - 1)),
        event_shape=(1,),
        name=f"max_of_{k}_pieces",
    )

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        q = pieces(p["theta"].to(DTYPE))
        tied = q >= q.max(-1, keepdim=True).values - _tie_tol(q, 1e-9)
        return [torch.nonzero(row).to(DTYPE).reshape(-1, 1) for row in tied]

    nontied = torch.where(gt > 0, gt, torch.inf)
    return KnownProblem(
        name="max_of_pieces",
        description=(
            "g(θ, δ; b) = Σ_j hat_j(δ) q_bj(θ), q_bj(θ) = ½ a_bj ‖θ − c_bj‖² + e_bj, "
            f"δ ∈ [0, {k - 1}] (k = {k} pieces, θ ∈ R^{n}, B = {bsz})"
        ),
        problem=problem,
        batch=(at, ct, e),
        per_example_loss=lambda p: pieces(p["theta"].to(DTYPE)).max(-1).values,
        maximizers=maxs,
        call=_call("max_of_pieces", a=_lst(a), c=_lst(c), gaps=_lst(gaps), theta=_lst(theta)),
        info={"k": k, "dim": n, "B": bsz, "gap": float(nontied.min()) if k else math.inf,
              "tied": [int((row == 0).sum()) for row in gt]},
    )


def _subset_bits(k: int) -> Tensor:
    """[2^k, k] bool: bit j of subset s."""
    s = torch.arange(2**k).unsqueeze(-1)
    return (s >> torch.arange(k)) & 1 == 1


def multilinear_box(
    w: Nested = (((0.0,), (1.0,), (0.0,), (0.0,)),),
    v: Nested = ((0.0, 0.0, 0.5, 0.25),),
    lower: float = -1.0,
    upper: float = 1.0,
    theta: Nested = (0.0,),
    flat: int | None = None,
) -> KnownProblem:
    """g(θ, δ; b) = Σ_{S ⊆ {1..k}} (⟨w_bS, θ⟩ + v_bS) Π_{j∈S} δ_j on the box δ ∈ [lower, upper]^k.

    g is multilinear in δ, so its max over the box is attained at vertices, and the θ-gradients
    on any maximal face are convex combinations of those at the face's vertices: the maximizer set
    is the set of maximal vertices (all 2^k are enumerated; k ≤ 3).

    ``flat=j`` forces ties: v_bS is replaced by −⟨w_bS, θ⟩ for every S ∋ j, so that at the given
    θ, g does not depend on δ_j and vertices pair up. Subsets S are indexed by bitmask (bit j ↔ j).

    Args: w [B][2^k][n], v [B][2^k], lower < upper, theta [n].
    """
    wt, vt, th = _t(w), _t(v), _t(theta)
    if wt.ndim != 3 or vt.shape != wt.shape[:2]:
        raise ValueError("multilinear_box needs w [B][2^k][n] and v [B][2^k]")
    bsz, ns, n = wt.shape
    k = round(math.log2(ns)) if ns else -1
    if ns < 2 or 2**k != ns or k > 3:
        raise ValueError(f"w needs 2^k subsets with 1 ≤ k ≤ 3, got {ns}")
    if th.shape != (n,):
        raise ValueError(f"theta must have {n} entries")
    if not float(lower) < float(upper):
        raise ValueError("lower must be < upper")
    bits = _subset_bits(k)
    if flat is not None:
        if not 0 <= flat < k:
            raise ValueError(f"flat must be in [0, {k})")
        vt = torch.where(bits[:, flat], -(wt @ th), vt)

    def values(theta_: Tensor, delta: Tensor, w_: Tensor, v_: Tensor) -> Tensor:
        mono = torch.where(bits, delta.unsqueeze(-2), torch.ones((), dtype=delta.dtype)).prod(-1)
        return ((w_ @ theta_ + v_) * mono).sum(-1)

    problem = FunctionProblem(
        lambda p, d, batch: values(p["theta"], d, batch[0], batch[1]),
        {"theta": th.clone()},
        Box(float(lower), float(upper)),
        event_shape=(k,),
        name=f"multilinear_{k}",
    )
    verts = torch.tensor(list(itertools.product((float(lower), float(upper)), repeat=k)),
                         dtype=DTYPE)  # [V, k]

    def vertex_values(p: Mapping[str, Tensor]) -> Tensor:
        return values(p["theta"].to(DTYPE), verts.unsqueeze(1), wt, vt).T  # [B, V]

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        vals = vertex_values(p)
        tied = vals >= vals.max(-1, keepdim=True).values - _tie_tol(vals, 1e-9)
        return [verts[row] for row in tied]

    vals0 = vertex_values({"theta": th})
    tied0 = vals0 >= vals0.max(-1, keepdim=True).values - _tie_tol(vals0, 1e-9)
    rest = torch.where(tied0, -torch.inf, vals0).max(-1).values
    gap = float((vals0.max(-1).values - rest).min())
    return KnownProblem(
        name="multilinear_box",
        description=(
            f"g(θ, δ; b) = Σ_S (⟨w_bS, θ⟩ + v_bS) Π_(j∈S) δ_j, δ ∈ [{float(lower):g}, "
            f"{float(upper):g}]^{k} (θ ∈ R^{n}, B = {bsz})"
        ),
        problem=problem,
        batch=(wt, vt),
        per_example_loss=lambda p: vertex_values(p).max(-1).values,
        maximizers=maxs,
        call=_call("multilinear_box", w=_lst(w), v=_lst(v), lower=float(lower),
                   upper=float(upper), theta=_lst(theta), flat=flat),
        info={"k": k, "dim": n, "B": bsz, "gap": gap, "tied": [int(r.sum()) for r in tied0]},
    )


_NORMS: dict[str, type[LinfBall] | type[L2Ball] | type[L1Ball]] = {
    "inf": LinfBall, "2": L2Ball, "1": L1Ball,
}


def linear_model(
    w: Nested = (1.0, 1.0),
    b: float = 0.0,
    x: Nested = ((0.5, -0.5),),
    y: Nested = (1.0,),
    eps: float = 0.5,
    norm: Literal["inf", "2", "1"] = "1",
    loss: Literal["linear", "logistic"] = "logistic",
) -> KnownProblem:
    """A linear classifier under an Lp ball: g(θ, δ; x, y) = ℓ(y (⟨w, x + δ⟩ + b)), ‖δ‖_p ≤ ε.

    ℓ(m) = −m (``"linear"``) or log(1 + e^{−m}) (``"logistic"``) decreases with the margin m, so
    max_δ g = ℓ(y(⟨w, x⟩ + b) − ε ‖w‖_q) with q the dual norm, at
    δ* = ε·argmax_{‖u‖_p ≤ 1} ⟨−y w, u⟩: L∞: −ε y sign(w) (both signs where w_i = 0);
    L2: −ε y w/‖w‖ (needs w ≠ 0); L1: −ε y sign(w_i) e_i for every i with maximal |w_i| (ties
    give several maximizers).

    θ = {"w": [n], "b": [1]}; labels y ∈ {−1, +1}.
    """
    wt, xt, yt = _t(w), _t(x), _t(y)
    if wt.ndim != 1 or xt.ndim != 2 or xt.shape[1] != wt.shape[0] or yt.shape != xt.shape[:1]:
        raise ValueError("linear_model needs w [n], x [B][n], y [B]")
    if norm not in _NORMS:
        raise ValueError(f"norm must be 'inf', '2' or '1', got {norm!r}")
    if loss not in ("linear", "logistic"):
        raise ValueError(f"loss must be 'linear' or 'logistic', got {loss!r}")
    if norm == "2" and float(wt.abs().max()) == 0:
        raise ValueError("the L2 ball with w = 0 has a whole ball of maximizers (not a finite set)")
    n = wt.shape[0]

    def ell(m: Tensor) -> Tensor:
        return -m if loss == "linear" else nn.functional.softplus(-m)

    def fn(p: Mapping[str, Tensor], d: Tensor, batch: Batch) -> Tensor:
        xb, yb = batch
        return ell(yb * (((xb + d) * p["w"]).sum(-1) + p["b"][0]))

    problem = FunctionProblem(fn, {"w": wt.clone(), "b": _t([b])}, _NORMS[norm](float(eps)),
                              event_shape=(n,), name=f"linear_l{norm}")
    q = {"inf": 1.0, "2": 2.0, "1": math.inf}[norm]

    def per_example(p: Mapping[str, Tensor]) -> Tensor:
        wp = p["w"].to(DTYPE)
        margin = yt * (xt @ wp + p["b"].to(DTYPE)[0]) - float(eps) * torch.linalg.vector_norm(wp, q)
        return ell(margin)

    def maxs(p: Mapping[str, Tensor]) -> list[Tensor]:
        wp = p["w"].to(DTYPE)
        tol = 1e-9 * max(1.0, float(wp.abs().max()))
        out = []
        for yb in yt:
            s = -yb * wp
            if norm == "inf":
                choices = [[float(eps) * float(torch.sign(si))] if abs(float(si)) > tol
                           else [-float(eps), float(eps)] for si in s]
                out.append(torch.tensor(list(itertools.product(*choices)), dtype=DTYPE))
            elif norm == "2":
                out.append((float(eps) * s / s.norm()).reshape(1, n))
            else:
                top = float(s.abs().max())
                rows = []
                for i in range(n):
                    if abs(float(s[i])) >= top - tol:
                        signs = [float(torch.sign(s[i]))] if top > tol else [-1.0, 1.0]
                        for sg in signs:
                            e_i = torch.zeros(n, dtype=DTYPE)
                            e_i[i] = float(eps) * sg
                            rows.append(e_i)
                out.append(torch.stack(rows))
        return out

    mags = wt.abs()
    if norm == "inf":
        nz = mags[mags > 0]
        gap = float(nz.min()) if len(nz) else math.inf
    elif norm == "1":
        others = mags[mags < mags.max()]
        gap = float(mags.max() - others.max()) if len(others) else math.inf
    else:
        gap = float(mags.norm())
    return KnownProblem(
        name="linear_model",
        description=(
            f"g(θ, δ; x, y) = ℓ(y(⟨w, x + δ⟩ + b)), ℓ = {loss}, ‖δ‖_{norm} ≤ {float(eps):g}"
            f" (w ∈ R^{n}, B = {xt.shape[0]})"
        ),
        problem=problem,
        batch=(xt, yt),
        per_example_loss=per_example,
        maximizers=maxs,
        call=_call("linear_model", w=_lst(w), b=float(b), x=_lst(x), y=_lst(y), eps=float(eps),
                   norm=norm, loss=loss),
        info={"k": 0, "dim": n + 1, "B": xt.shape[0], "gap": gap, "norm": norm},
    )


class _SignedOutput(nn.Module):
    """Per-example loss y·f(x) for a network with one output."""

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        return y * out[..., 0]


def tanh_network(
    W: Nested = ((1.0,), (-1.0,)),
    c: Nested = (-0.5, -0.5),
    v: Nested = (1.0, 1.0),
    b0: float = 0.0,
    x: Nested = ((0.0,),),
    y: Nested = (1.0,),
    radius: float = 1.0,
    points: int | None = None,
) -> KnownProblem:
    """A one-hidden-layer tanh network f(z) = Σ_h v_h tanh(⟨W_h, z⟩ + c_h) + b₀ as an ``nn.Module``,
    g(θ, δ; x, y) = y·f(x + δ) with δ ∈ [−radius, radius]^d, d ∈ {1, 2}, through `ModuleProblem`.

    The maximizers are enumerated: the local maxima of a grid (``points`` per axis; default 41
    for d = 1, 21 for d = 2, via `minimax.Grid`), each refined by compass search to ~1e-14, and
    those within 1e-9 (relative) of the best kept. Pairs of units (W_h, c_h, v_h), (−W_h, c_h, v_h)
    and x = 0 make f even, so maximizers come in ± pairs.

    θ = the module's parameters ``0.weight`` [H, d], ``0.bias`` [H], ``2.weight`` [1, H] and
    ``2.bias`` [1].
    """
    Wt, ct, vt, xt, yt = _t(W), _t(c), _t(v), _t(x), _t(y)
    if Wt.ndim != 2 or ct.shape != Wt.shape[:1] or vt.shape != Wt.shape[:1]:
        raise ValueError("tanh_network needs W [H][d], c [H], v [H]")
    H, d = Wt.shape
    if d not in (1, 2) or xt.ndim != 2 or xt.shape[1] != d or yt.shape != xt.shape[:1]:
        raise ValueError("tanh_network needs d ∈ {1, 2}, x [B][d], y [B]")
    hidden, out = nn.Linear(d, H, dtype=DTYPE), nn.Linear(H, 1, dtype=DTYPE)
    with torch.no_grad():
        hidden.weight.copy_(Wt)
        hidden.bias.copy_(ct)
        out.weight.copy_(vt.reshape(1, H))
        out.bias.fill_(float(b0))
    model = nn.Sequential(hidden, nn.Tanh(), out)
    r = float(radius)
    problem = ModuleProblem(model, _SignedOutput(), LinfBall(r))
    batch = (xt, yt)
    npts = points or (41 if d == 1 else 21)
    h0 = 2 * r / (npts - 1)
    axes = [torch.linspace(-r, r, npts, dtype=DTYPE)] * d
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, d)  # [G, d]

    def net(p: Mapping[str, Tensor], delta: Tensor) -> Tensor:
        """The oracle's own evaluation of g, independent of the module: [N, B, d] → [N, B]."""
        z = xt + delta
        hidden = torch.tanh(z @ p["0.weight"].to(DTYPE).T + p["0.bias"].to(DTYPE))
        return yt * (hidden @ p["2.weight"].to(DTYPE)[0] + p["2.bias"].to(DTYPE)[0])

    cache: dict[tuple[Any, ...], tuple[list[Tensor], Tensor, Tensor]] = {}

    def enumerate_(p: Mapping[str, Tensor]) -> tuple[list[Tensor], Tensor, Tensor]:
        key = tuple((k, v.detach().cpu().numpy().tobytes()) for k, v in sorted(p.items()))
        if key in cache:
            return cache[key]
        bsz = xt.shape[0]
        vals = net(p, mesh.unsqueeze(1).expand(-1, bsz, d))  # [G, B]
        local = local_maxima(vals.reshape(*([npts] * d), bsz))  # [G, B]
        starts = []
        for j in range(bsz):
            idx = torch.nonzero(local[:, j]).flatten()
            idx = idx[vals[idx, j].argsort(descending=True)][:6]
            idx = torch.cat([idx, idx[:1].expand(6 - len(idx))])
            starts.append(mesh[idx])
        pts, pvals = _compass(lambda q: net(p, q), torch.stack(starts, dim=1), -r, r, h0)
        best = pvals.max(0).values  # [B]
        out, gaps = [], []
        for j in range(bsz):
            tol = 1e-9 * max(1.0, abs(float(best[j])))
            keep = pvals[:, j] >= best[j] - tol
            out.append(_dedupe(pts[keep, j], 1e-7 * r))
            others = pvals[~keep, j]
            gap = float(best[j] - others.max()) if len(others) else math.inf
            # a plateau (more grid points at the max than maximizers found) is not a finite set
            if int((vals[:, j] >= best[j] - tol).sum()) > len(out[-1]):
                gap = 0.0
            gaps.append(gap)
        if len(cache) > 64:
            cache.clear()
        cache[key] = (out, best, torch.tensor(gaps, dtype=DTYPE))
        return cache[key]

    _, _, gaps0 = enumerate_({k: t.detach() for k, t in problem.parameters().items()})
    return KnownProblem(
        name="tanh_network",
        description=(
            f"g(θ, δ; x, y) = y·(Σ_h v_h tanh(⟨W_h, x + δ⟩ + c_h) + b₀), δ ∈ [−{r:g}, {r:g}]^{d}"
            f" (H = {H}, B = {xt.shape[0]}; maximizers by grid + refinement)"
        ),
        problem=problem,
        batch=batch,
        per_example_loss=lambda p: enumerate_(p)[1],
        maximizers=lambda p: enumerate_(p)[0],
        call=_call("tanh_network", W=_lst(W), c=_lst(c), v=_lst(v), b0=float(b0), x=_lst(x),
                   y=_lst(y), radius=r),
        info={"k": 0, "dim": d, "hidden": H, "B": xt.shape[0], "gap": float(gaps0.min())},
    )


def _compass(
    f: Callable[[Tensor], Tensor], start: Tensor, lo: float, hi: float, h0: float,
    iters: int = 300,
) -> tuple[Tensor, Tensor]:
    """Compass search for maxima of f ([N, B, d] → [N, B]) from start [M, B, d] in [lo, hi]^d:
    move to the best of the 3^d neighbours at spacing h, halve h when the centre is best."""
    m, b, d = start.shape
    offs = [o for o in itertools.product((-1.0, 0.0, 1.0), repeat=d) if any(o)]
    offsets = torch.tensor([(0.0,) * d, *offs], dtype=start.dtype)  # centre first: wins ties
    pts = start.clone()
    h = torch.full((m, b), h0, dtype=start.dtype)
    for _ in range(iters):
        cand = (pts.unsqueeze(0) + h[None, :, :, None] * offsets[:, None, None, :]).clamp(lo, hi)
        vals = f(cand.reshape(-1, b, d)).reshape(len(offsets), m, b)
        best = vals.argmax(0)
        pts = cand.gather(0, best[None, :, :, None].expand(1, m, b, d))[0]
        h = torch.where(best == 0, h / 2, h)
        if bool((h < 1e-13 * (hi - lo)).all()):
            break
    return pts, f(pts)


def _dedupe(points: Tensor, tol: float) -> Tensor:
    """Rows of points [n, d] with near-duplicates (within tol, max-norm) removed."""
    kept: list[Tensor] = []
    for row in points:
        if all(float((row - k).abs().max()) > tol for k in kept):
            kept.append(row)
    return torch.stack(kept)


PROBLEMS: dict[str, Callable[..., KnownProblem]] = {
    "counterexample": counterexample,
    "bilinear": bilinear,
    "max_of_pieces": max_of_pieces,
    "multilinear_box": multilinear_box,
    "linear_model": linear_model,
    "tanh_network": tanh_network,
}


def make_problem(name: str, **kwargs: Any) -> KnownProblem:
    """Build a known problem by family name (a key of `PROBLEMS`) with the family's arguments."""
    try:
        builder = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose one of {', '.join(PROBLEMS)}") from None
    return builder(**kwargs)
