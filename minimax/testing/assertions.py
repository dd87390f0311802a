"""Assertions for descent claims, with readable multi-line reports.

- `assert_descent_direction`: −d descends the exact robust loss (Danskin's formula over the true
  maximizers, and actual decrease for small steps);
- `assert_stationary`: the min-norm element of the Danskin set vanishes;
- `assert_min_norm_optimal`: weights solve the simplex min-norm QP (feasibility and KKT);
- `assert_rule_descends`: runs a rule on exact maximizers, then the right one of the first two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from minimax.problem import Batch, Problem
from minimax.rules import Direction, Rule
from minimax.testing.problems import (
    DTYPE,
    DanskinSet,
    KnownProblem,
    danskin_set,
    fmt,
    fmt_params,
)

__all__ = [
    "DescentCheck",
    "assert_descent_direction",
    "assert_min_norm_optimal",
    "assert_rule_descends",
    "assert_stationary",
]

DEFAULT_STEPS: tuple[float, ...] = (1e-4, 1e-6)


@dataclass(frozen=True)
class DescentCheck:
    """The numbers behind `assert_descent_direction` (returned when it passes).

    derivative: R'(θ; −d̂) with d̂ = d/‖d‖ (Danskin's formula over the maximizers);
    norm: ‖d‖; min_norm: ‖γ⋆‖, the norm of the min-norm element of the Danskin set (the steepest
    possible slope is −‖γ⋆‖); loss: R(θ); steps: (η, R(θ − η d̂) − R(θ) or None if unmeasurable).
    """

    derivative: float
    norm: float
    min_norm: float
    loss: float
    steps: tuple[tuple[float, float | None], ...]


def _vector(direction: Direction | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    if isinstance(direction, Direction):
        return direction.vector
    if isinstance(direction, Mapping):
        return direction
    raise TypeError(
        "direction must be a minimax.extend.Direction or a dict shaped like θ, got "
        f"{type(direction).__name__}"
    )


def _resolve(
    problem_or_known: Problem | KnownProblem,
    params: Mapping[str, Tensor] | None,
    batch: Batch,
    robust_loss: Callable[[Mapping[str, Tensor]], Tensor] | None,
) -> tuple[
    KnownProblem | None,
    Problem,
    Batch,
    dict[str, Tensor],
    Callable[[Mapping[str, Tensor]], Tensor] | None,
]:
    if isinstance(problem_or_known, KnownProblem):
        known: KnownProblem | None = problem_or_known
        problem, batch = problem_or_known.problem, problem_or_known.batch
        robust_loss = robust_loss or problem_or_known.robust_loss
    elif isinstance(problem_or_known, Problem):
        known, problem = None, problem_or_known
    else:
        raise TypeError(
            f"expected a KnownProblem or a minimax Problem, got {type(problem_or_known).__name__}"
        )
    p = problem.parameters() if params is None else params
    return known, problem, batch, {k: v.detach() for k, v in p.items()}, robust_loss


def _header(
    known: KnownProblem | None, problem: Problem, params: Mapping[str, Tensor]
) -> list[str]:
    if known is not None:
        return known.describe(params).splitlines()
    return [repr(problem), f"  θ = {fmt_params(params)}"]


def _maximizer_lines(dset: DanskinSet, d_unit: Mapping[str, Tensor]) -> list[str]:
    lines = []
    neg = {k: -v for k, v in d_unit.items()}
    for j, (m, v, s) in enumerate(zip(dset.maximizers, dset.values, dset.slopes(neg))):
        lines.append(f"  example {j}:")
        for i in range(len(m)):
            lines.append(
                f"    δ = {fmt(m[i].reshape(-1))}: g = {float(v[i]):.10g}, "
                f"⟨−d̂, ∇θ g⟩/B = {float(s[i]):+.6g}"
            )
    return lines


def assert_descent_direction(
    problem_or_known: Problem | KnownProblem,
    params: Mapping[str, Tensor] | None,
    direction: Direction | Mapping[str, Tensor],
    *,
    maximizers: Sequence[Tensor] | None = None,
    batch: Batch = None,
    robust_loss: Callable[[Mapping[str, Tensor]], Tensor] | None = None,
    steps: Sequence[float] = DEFAULT_STEPS,
    tol: float = 1e-9,
) -> DescentCheck:
    """Assert that −d is a descent direction of the exact robust loss R at θ.

    Two checks, on the unit direction d̂ = d/‖d‖ (a positive scale does not change the claim):

    1. Danskin's formula over the TRUE maximizer sets S⋆_b:
       ``R'(θ; −d̂) = Σ_b max_{δ ∈ S⋆_b} ⟨−d̂, ∇θ g(θ, δ; b)⟩ / B  <  −tol``;
    2. the exact robust loss decreases: R(θ − η d̂) < R(θ) for every η in ``steps`` (a step
       whose predicted and measured changes are both below float64 resolution of R, 256·eps·
       max(1, |R|), is reported, not checked).

    Args:
        problem_or_known: a `KnownProblem` (its exact maximizers and R are used), or a plain
            `Problem` together with ``maximizers`` (per example [k_b, *event]), ``batch`` and,
            for check 2, ``robust_loss`` (without it only check 1 runs).
        params: θ (None: the problem's own parameters).
        direction: a `minimax.extend.Direction` or a dict shaped like θ; the step is θ − η d.
        steps: step lengths η (in θ-space, along the unit direction).
        tol: the margin by which the slope must be negative.

    Returns:
        a `DescentCheck` with the numbers. Raises AssertionError with a report otherwise.
    """
    known, problem, batch, p, loss_fn = _resolve(problem_or_known, params, batch, robust_loss)
    d = _vector(direction)
    dset = _danskin_set(known, problem, p, batch, maximizers)
    flat_d = dset.flatten(d)
    norm = float(flat_d.norm())
    _, gamma_norm, _ = dset.min_norm()
    unit, deriv, failed, degenerate = _unit_slope(dset, flat_d, norm, tol)
    loss0, step_results, lines = float("nan"), list[tuple[float, float | None]](), list[str]()
    if loss_fn is not None:  # check 2 (no steps along a degenerate d)
        loss0, step_results, lines, more = _step_checks(
            loss_fn, p, unit, deriv, () if degenerate else steps
        )
        failed += more
    if failed:
        report = ["Not a descent direction of the robust loss R(θ) = mean_b max_δ g(θ, δ; b)."]
        report += [f"  ✗ {f}" for f in failed]
        report += _header(known, problem, p)
        report.append(f"  d = {fmt_params(d)}  (‖d‖ = {norm:.6g})")
        report += _slope_lines(dset, unit, deriv, float(gamma_norm))
        if loss_fn is not None:
            report.append(f"  R(θ) = {loss0:.12g}")
            report += lines
        raise AssertionError("\n".join(report))
    return DescentCheck(deriv, norm, float(gamma_norm), loss0, tuple(step_results))


def _danskin_set(
    known: KnownProblem | None,
    problem: Problem,
    p: Mapping[str, Tensor],
    batch: Batch,
    maximizers: Sequence[Tensor] | None,
) -> DanskinSet:
    """The Danskin set at θ = p: a known problem's, or a plain problem's at ``maximizers``."""
    if known is None:
        return danskin_set(problem, p, batch=batch, maximizers=maximizers)
    return danskin_set(known, p, maximizers=maximizers)


def _unit_slope(
    dset: DanskinSet, flat_d: Tensor, norm: float, tol: float
) -> tuple[dict[str, Tensor], float, list[str], bool]:
    """Check 1 of `assert_descent_direction`: the unit direction d̂ (zeros for a degenerate d),
    R'(θ; −d̂) by Danskin's formula, the failures and whether d is degenerate (zero, non-finite
    or at the rounding level of the gradients)."""
    scale = sum(float(g.norm(dim=-1).max()) for g in dset.gradients)
    if not math.isfinite(norm) or norm <= 1e-12 * scale or norm == 0.0:
        unit = {k: torch.zeros_like(v, dtype=DTYPE) for k, v in dset.unflatten(flat_d).items()}
        return (
            unit,
            0.0,
            [f"‖d‖ = {norm:.3g}: a zero (or non-finite) direction descends nowhere"],
            True,
        )
    unit = dset.unflatten(flat_d / norm)
    deriv = float(dset.directional_derivative({k: -v for k, v in unit.items()}))
    failed = []
    if not deriv < -tol:
        failed.append(
            f"R'(θ; −d̂) = {deriv:+.6g} is not < −{tol:g}: −d is "
            + ("an ascent direction" if deriv > 0 else "not a strict descent direction")
        )
    return unit, deriv, failed, False


def _step_checks(
    loss_fn: Callable[[Mapping[str, Tensor]], Tensor],
    p: Mapping[str, Tensor],
    unit: Mapping[str, Tensor],
    deriv: float,
    steps: Sequence[float],
) -> tuple[float, list[tuple[float, float | None]], list[str], list[str]]:
    """Check 2 of `assert_descent_direction`: R(θ − η d̂) < R(θ) for each η (a step below
    float64 resolution of R is reported, not checked). Returns R(θ), (η, change or None) per
    step, the report's lines and the failures."""
    loss0 = float(loss_fn(p))
    floor = 256 * torch.finfo(DTYPE).eps * max(1.0, abs(loss0))
    results: list[tuple[float, float | None]] = []
    lines: list[str] = []
    failed: list[str] = []
    for eta in steps:
        moved = {k: p[k].to(DTYPE) - eta * unit[k].to(DTYPE) for k in p}
        moved = {k: v.to(p[k].dtype) for k, v in moved.items()}
        change = float(loss_fn(moved)) - loss0
        if eta * abs(deriv) < floor and abs(change) < floor:
            results.append((eta, None))
            lines.append(
                f"  η = {eta:g}: R(θ − η d̂) − R(θ) = {change:+.6g} "
                "(below float64 resolution, not checked)"
            )
            continue
        results.append((eta, change))
        ok = change < 0
        lines.append(
            f"  η = {eta:g}: R(θ − η d̂) − R(θ) = {change:+.6g} "
            f"(first-order prediction {eta * deriv:+.6g}){'' if ok else '  ✗'}"
        )
        if not ok:
            failed.append(f"R(θ − η d̂) ≥ R(θ) at η = {eta:g}: the robust loss does not decrease")
    return loss0, results, lines, failed


def _slope_lines(
    dset: DanskinSet, unit: Mapping[str, Tensor], deriv: float, gamma_norm: float
) -> list[str]:
    """The report's maximizers with their slopes along −d̂, R'(θ; −d̂) and the steepest slope."""
    lines = ["  maximizers (with the slope of each along −d̂):"]
    lines += _maximizer_lines(dset, unit)
    lines.append(f"  R'(θ; −d̂) = Σ_b max_δ ⟨−d̂, ∇θ g⟩/B = {deriv:+.6g}")
    lines.append(
        f"  the steepest descent −γ*/‖γ*‖ has slope −‖γ*‖ = {-gamma_norm:+.6g}"
        + ("  (θ is stationary: no descent direction exists)" if gamma_norm <= 1e-12 else "")
    )
    return lines


def assert_stationary(
    problem_or_known: Problem | KnownProblem,
    params: Mapping[str, Tensor] | None = None,
    *,
    tol: float = 1e-8,
    maximizers: Sequence[Tensor] | None = None,
    batch: Batch = None,
) -> float:
    """Assert ‖γ⋆‖ ≤ tol, γ⋆ the min-norm element of the Danskin set at θ (θ is stationary).

    The set is Σ_b conv{∇θ g(θ, δ; b)/B : δ ∈ S⋆_b} over the true maximizers; its min-norm element
    is computed exactly with `minimax.min_norm_weights` (one example) or
    `minimax.linalg.min_norm_product_weights` (one simplex block per example). Returns ‖γ⋆‖.
    """
    known, problem, batch, p, _ = _resolve(problem_or_known, params, batch, None)
    dset = _danskin_set(known, problem, p, batch, maximizers)
    gamma, norm_t, res = dset.min_norm()
    norm = float(norm_t)
    if not norm <= tol:
        report = [
            f"Not stationary: ‖γ*‖ = {norm:.6g} > tol = {tol:g}, γ* the min-norm element of "
            "the Danskin set."
        ]
        report += _header(known, problem, p)
        report.append(f"  γ* = {fmt_params(gamma)}  (KKT residual {float(res.kkt.max()):.2e})")
        report.append(
            "  a descent direction is −γ*; maximizers (with the slope of each along −γ̂*):"
        )
        report += _maximizer_lines(dset, {k: v / norm for k, v in gamma.items()})
        raise AssertionError("\n".join(report))
    return norm


def assert_min_norm_optimal(
    weights: Tensor,
    gram: Tensor,
    *,
    tol: float = 1e-9,
    block_sizes: Sequence[int] | None = None,
) -> None:
    """Assert that ``weights`` α solve min_{α ∈ Δ} αᵀKα (or the product of simplices).

    Checks, in float64 with s = tr(K)/m (the mean squared norm; 1 if K = 0):
    simplex feasibility α_i ≥ −tol and |Σ_(i∈block) α_i − 1| ≤ tol; dual feasibility
    (Kα)_i ≥ λ − tol·s for every i, with λ = αᵀKα (per block: λ_j = Σ_(i∈j) α_i (Kα)_i / Σ α_i);
    complementarity α_i·|(Kα)_i − λ| ≤ tol·s (equality on the support).
    """
    K = torch.as_tensor(gram).detach().to("cpu", DTYPE)
    a = torch.as_tensor(weights).detach().to("cpu", DTYPE).reshape(-1)
    m = K.shape[-1]
    if K.shape != (m, m) or a.shape != (m,):
        raise AssertionError(
            f"weights {tuple(a.shape)} and gram {tuple(K.shape)} must be [m], [m, m]"
        )
    sizes = [m] if block_sizes is None else [int(s) for s in block_sizes]
    if sum(sizes) != m:
        raise AssertionError(f"block_sizes {sizes} do not sum to m = {m}")
    trace = float(torch.diagonal(K).sum())
    s = trace / m if trace > 0 else 1.0
    r = K @ a
    problems: list[str] = []
    if not bool(torch.isfinite(a).all()):
        problems.append("weights contain NaN or Inf")
    start = 0
    for j, n in enumerate(sizes):
        problems += _kkt_violations(j, start, a[start : start + n], r[start : start + n], s, tol)
        start += n
    if problems:
        report = ["Not an optimal min-norm weight vector (α ∈ Δ, (Kα)_i ≥ αᵀKα, = on the support):"]
        report += [f"  ✗ {p}" for p in problems]
        report.append(f"  m = {m}, blocks = {sizes}, s = tr(K)/m = {s:.6g}, tol = {tol:g}")
        report.append(f"  α = {fmt(a)}")
        report.append(f"  Kα / s = {fmt(r / s)}")
        report.append(f"  αᵀKα / s = {float(a @ r) / s:.12g}")
        raise AssertionError("\n".join(report))


def _kkt_violations(j: int, start: int, aj: Tensor, rj: Tensor, s: float, tol: float) -> list[str]:
    """The KKT conditions `assert_min_norm_optimal` finds violated on block j (its weights aj
    and (Kα) entries rj, from index ``start``; s the scale of K)."""
    problems = []
    total = float(aj.sum())
    if abs(total - 1) > tol:
        problems.append(f"block {j}: Σ α = {total:.12g} ≠ 1")
    if float(aj.min()) < -tol:
        problems.append(f"block {j}: negative weight {float(aj.min()):.3g}")
    lam = float((aj * rj).sum() / total) if total != 0 else float("nan")
    worst = float((lam - rj).max()) / s
    if worst > tol:
        i = int((lam - rj).argmax())
        problems.append(
            f"block {j}: (Kα)_{start + i} = {float(rj[i]):.6g} < λ = {lam:.6g} by "
            f"{worst:.3g}·s (a vertex is better: not optimal)"
        )
    comp = float((aj.clamp_min(0) * (rj - lam).abs()).max()) / s
    if comp > tol:
        problems.append(
            f"block {j}: complementarity α_i·|(Kα)_i − λ| = {comp:.3g}·s on the support"
        )
    return problems


def assert_rule_descends(
    rule: Rule,
    known: KnownProblem,
    params: Mapping[str, Tensor] | None = None,
    *,
    mode: str = "product",
    extra: Tensor | None = None,
    stationary_tol: float = 1e-7,
    steps: Sequence[float] = DEFAULT_STEPS,
    tol: float = 1e-9,
) -> Direction:
    """Run ``rule`` on the exact maximizers of ``known`` (plus ``extra`` candidates) and check it.

    Where θ is stationary (‖γ⋆‖ ≤ stationary_tol) no descent direction exists and only that is
    asserted; elsewhere `assert_descent_direction` must pass. Returns the rule's `Direction`.
    """
    p = {k: v.detach() for k, v in (known.params if params is None else params).items()}
    if mode not in ("product", "padded"):
        raise ValueError(f"mode must be 'product' or 'padded', got {mode!r}")
    cands = known.candidates(p, mode="product" if mode == "product" else "padded", extra=extra)
    direction = rule(known.problem, p, known.batch, cands)
    _, gamma_norm, _ = danskin_set(known, p).min_norm()
    if float(gamma_norm) <= stationary_tol:
        assert_stationary(known, p, tol=stationary_tol)
        return direction
    try:
        assert_descent_direction(known, p, direction, steps=steps, tol=tol)
    except AssertionError as err:
        raise AssertionError(f"{rule!r} on {cands!r}:\n{err}") from None
    return direction
