"""Minimum-norm point of a convex hull, from the Gram matrix alone.

Given ``gram`` K = G Gᵀ of m vectors g_1..g_m (K is m×m), solve the simplex QP

    α* = argmin_{α ∈ Δ_m} αᵀ K α,      d = Σ_i α*_i g_i,      ‖d‖² = α*ᵀ K α*

and its coupled variant over a product of simplices (one simplex per block of indices).
Optimality (KKT): (Kα)_i ≥ αᵀKα for every i, with equality where α_i > 0.

Every solver computes in float64 on the trace-normalized matrix Kn = K / (tr K / m) (the minimizer
is invariant to the scale of K) and returns a :class:`MinNormResult` that carries its KKT residual,
so a caller can check the answer. Methods:

- ``"wolfe"`` (default): Wolfe's finite min-norm-point algorithm on the Gram matrix (exact).
- ``"nnls"``: reduction to non-negative least squares via :func:`scipy.optimize.nnls` (exact,
  the reference).
- ``"frank-wolfe"``: pairwise Frank-Wolfe with exact line search (iterative).
- ``"apg"``: accelerated projected gradient, FISTA with sort-based simplex projection (iterative;
  100 iterations by default, the DDi paper's solver).
- ``"cvxpylayers"``: differentiable conic solve; gradients of the weights flow to ``gram``.

m = 1 and m = 2 are solved in closed form by every method.

Layout: `minimax.minnorm.base` (result type, checks, KKT), `.exact` (closed forms, Wolfe, NNLS),
`.iterative` (Frank-Wolfe, APG), `.differentiable` (cvxpylayers). The methods are registered in
`METHODS` (name → `MinNormMethod`): a new solver is one function ``solve(qp) -> (weights,
iterations)`` and one ``METHODS.add`` line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from minimax.minnorm.base import (
    MinNormConvergenceWarning,
    MinNormResult,
    block_ids,
    check_gram,
    check_tol,
    finish,
    kkt_residual,
    normalize,
    uniform_weights,
)
from minimax.minnorm.differentiable import cvxpylayers_weights
from minimax.minnorm.exact import closed_form, nnls_one, wolfe_batch
from minimax.minnorm.iterative import apg, pairwise_frank_wolfe
from minimax.registry import Registry

__all__ = [
    "METHODS",
    "MinNormConvergenceWarning",
    "MinNormMethod",
    "MinNormResult",
    "SimplexQP",
    "kkt_residual",
    "min_norm_point",
    "min_norm_product_weights",
    "min_norm_weights",
]

Solution = tuple["np.ndarray | Tensor", np.ndarray]


@dataclass(frozen=True)
class SimplexQP:
    """A batch of simplex QPs min_{α ∈ Δ_m} αᵀKα, as a solver receives them.

    gram: the caller's ``[..., m, m]`` tensor (for differentiable solvers); Kn: ``[B, m, m]``
    float64 trace-normalized matrices; zero: ``[B]`` entries with trace 0 (any α is optimal);
    tol, max_iter: the resolved stopping rule (``max_iter`` None: the method's default).
    """

    gram: Tensor
    Kn: np.ndarray
    zero: np.ndarray
    tol: float
    max_iter: int | None
    method: str


@dataclass(frozen=True)
class MinNormMethod:
    """A registered min-norm solver: ``solve(qp) -> (weights [B, m], iterations [B])``.

    tol: the default stopping tolerance (units of max_i Kn_ii). differentiable: the solver
    returns a torch tensor with its autograd graph and handles m ≤ 2 itself; the others get
    m ≥ 3 only (m ≤ 2 has a closed form).
    """

    solve: Callable[[SimplexQP], Solution]
    tol: float
    differentiable: bool = False

    def __call__(self, qp: SimplexQP) -> Solution:
        return self.solve(qp)


METHODS: Registry[Solution] = Registry("method")


def _wolfe(qp: SimplexQP) -> Solution:
    return wolfe_batch(
        qp.Kn, np.zeros(qp.Kn.shape[-1], dtype=np.intp), 1, qp.tol, qp.max_iter, qp.method
    )


def _nnls(qp: SimplexQP) -> Solution:
    B, m = qp.Kn.shape[0], qp.Kn.shape[-1]
    alpha, iters = np.empty((B, m)), np.zeros(B, dtype=np.int64)
    for b in range(B):
        alpha[b], iters[b] = (
            nnls_one(qp.Kn[b], qp.max_iter) if not qp.zero[b] else (np.full(m, 1 / m), 0)
        )
    return alpha, iters


def _frank_wolfe(qp: SimplexQP) -> Solution:
    return pairwise_frank_wolfe(qp.Kn, qp.tol, 1000 if qp.max_iter is None else qp.max_iter)


def _apg(qp: SimplexQP) -> Solution:
    cap = 100 if qp.max_iter is None else qp.max_iter
    a_t, it_t = apg(torch.from_numpy(qp.Kn).to(qp.gram.device), qp.tol, cap)
    return a_t.cpu().numpy(), it_t.cpu().numpy()


def _cvxpylayers(qp: SimplexQP) -> Solution:
    return cvxpylayers_weights(qp.gram, qp.tol), np.zeros(qp.Kn.shape[0], dtype=np.int64)


def _method(name: str) -> MinNormMethod:
    if not isinstance(name, str):
        raise TypeError(f"method must be a name in {METHODS.names()}, got {name!r}")
    solver = METHODS.get(name)
    assert isinstance(solver, MinNormMethod)
    return solver


# Tolerances: "wolfe" adds an index to the corral when it violates KKT by more than tol; "nnls":
# unused (scipy decides, then the support is polished); "frank-wolfe"/"apg": the Frank-Wolfe gap
# αᵀKnα − min_i (Knα)_i (0 runs APG's whole budget, the paper's fixed 100 steps); "cvxpylayers":
# the conic solver's eps.
for _name, _solver, _help in [
    (
        "wolfe",
        MinNormMethod(_wolfe, 1e-15),
        "Wolfe's min-norm-point algorithm on the Gram matrix (exact, default)",
    ),
    (
        "nnls",
        MinNormMethod(_nnls, 0.0),
        "reduction to non-negative least squares, scipy (exact, the reference)",
    ),
    (
        "frank-wolfe",
        MinNormMethod(_frank_wolfe, 1e-12),
        "pairwise Frank-Wolfe with exact line search (iterative, 1000 steps)",
    ),
    (
        "apg",
        MinNormMethod(_apg, 0.0),
        "accelerated projected gradient, FISTA (iterative, 100 steps: the paper's)",
    ),
    (
        "cvxpylayers",
        MinNormMethod(_cvxpylayers, 1e-10, differentiable=True),
        "differentiable conic solve; gradients of the weights reach gram",
    ),
]:
    METHODS.add(_name, _solver, help=_help)


def min_norm_weights(
    gram: Tensor,
    method: str = "wolfe",
    *,
    tol: float | None = None,
    max_iter: int | None = None,
    precision: torch.dtype | None = None,
) -> MinNormResult:
    """Weights of the minimum-norm point of conv{g_1..g_m}, given ``gram`` K = G Gᵀ.

    Solves α* = argmin_{α ∈ Δ_m} αᵀKα for each matrix of ``gram`` [..., m, m] (any real dtype;
    computed in float64 on Kn = K / (tr K / m)). Small asymmetries are symmetrized away.

    Args:
        gram: ``[..., m, m]`` symmetric positive semidefinite Gram matrices.
        method: one of ``"wolfe"`` (exact, default), ``"nnls"`` (exact, reference),
            ``"frank-wolfe"``, ``"apg"`` (iterative), ``"cvxpylayers"`` (differentiable).
        tol: method-specific stopping tolerance in units of max_i Kn_ii (``None``: the method's
            default; for ``"cvxpylayers"`` the conic solver's eps).
        max_iter: iteration cap (``None``: 25m + 100 linear solves for ``"wolfe"``, 50m + 100
            for scipy's nnls, 1000 for ``"frank-wolfe"``, 100 for ``"apg"``). The exact methods
            warn with :class:`MinNormConvergenceWarning` when they hit it.
        precision: the dtype ``gram``'s entries were computed in, when coarser than its own
            (e.g. ``torch.float32`` for a float64 K formed from float32 products): the symmetry
            and PSD checks allow that dtype's rounding. None: ``gram.dtype``.

    Returns:
        :class:`MinNormResult` with weights ``[..., m]`` float64 on ``gram``'s device.
        ``iterations`` counts linear solves (``"wolfe"``), steps (``"frank-wolfe"``, ``"apg"``),
        or the support size (``"nnls"``: scipy does not report its count). Only
        ``"cvxpylayers"`` keeps the autograd graph; the other methods return detached tensors.

    Raises:
        ValueError: malformed ``gram`` (shape, empty, NaN/Inf, asymmetric, indefinite) or an
            unknown ``method``.
    """
    solver = _method(method)
    t, max_iter = check_tol(tol, max_iter, solver.tol)
    K, batch, m = check_gram(gram, precision=precision)
    Kn, scale = normalize(K)
    B = K.shape[0]
    bid = np.zeros(m, dtype=np.intp)
    qp = SimplexQP(gram, Kn, scale <= 0, t, max_iter, method)
    if solver.differentiable and B > 0:
        w, iters = solver(qp)
        return finish(w, K, Kn, bid, 1, iters, batch, gram.device, method, gram=gram)
    if m <= 2 or B == 0:
        alpha = np.stack([closed_form(Kn[b]) for b in range(B)]) if B else np.empty((0, m))
        iters = np.zeros(B, dtype=np.int64)
    else:
        solved, iters = solver(qp)
        assert isinstance(solved, np.ndarray)
        alpha = solved
    alpha[qp.zero] = 1.0 / m  # all vectors zero: every point of the simplex is optimal
    iters[qp.zero] = 0
    return finish(alpha, K, Kn, bid, 1, iters, batch, gram.device, method)


def min_norm_point(
    vectors: Tensor, method: str = "wolfe", **kw: Any
) -> tuple[Tensor, MinNormResult]:
    """Minimum-norm point d of conv{vectors} and its :class:`MinNormResult`.

    Args:
        vectors: ``[..., m, n]`` the m vectors g_i (rows) of each problem.
        method, **kw: as in :func:`min_norm_weights`.

    Returns:
        ``(d, result)`` with d ``[..., n]`` in ``vectors``' dtype (computed in float64) and
        ``result.weights`` ``[..., m]``. With ``method="cvxpylayers"`` d is differentiable.
    """
    if not isinstance(vectors, Tensor) or vectors.dim() < 2:
        raise ValueError(
            "vectors must be a torch.Tensor of shape [..., m, n] (m vectors of dimension n); got "
            f"{tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__}."
        )
    if vectors.shape[-2] == 0:
        raise ValueError("vectors is empty (m = 0): the convex hull of no vectors has no point.")
    if vectors.is_complex():
        raise TypeError(f"vectors must be real, got dtype {vectors.dtype}")
    V = vectors.to(torch.float64)
    result = min_norm_weights(V @ V.mT, method, **kw)
    d = (result.weights.unsqueeze(-2) @ V).squeeze(-2)
    return d.to(vectors.dtype if vectors.is_floating_point() else torch.float64), result


def min_norm_product_weights(
    gram: Tensor,
    block_sizes: Sequence[int],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
    precision: torch.dtype | None = None,
) -> MinNormResult:
    """Min-norm point of a Minkowski sum of hulls: minimize αᵀKα over a product of simplices.

    The indices 0..m-1 are split into contiguous blocks of sizes ``block_sizes``; the weights of
    each block lie on their own simplex, and d = Σ_j Σ_{i∈j} α_i g_i. Solved exactly by Wolfe's
    active-set algorithm generalized to the product (a corral with ≥ 1 index per block). KKT:
    (Kα)_i ≥ λ_j for i in block j with equality where α_i > 0.

    Args:
        gram: ``[..., m, m]`` Gram matrices.
        block_sizes: positive block sizes summing to m.
        tol, max_iter: as for ``method="wolfe"`` in :func:`min_norm_weights`.
        precision: as in :func:`min_norm_weights`.

    Returns:
        :class:`MinNormResult` with flat weights ``[..., m]`` (split them by ``block_sizes``).
    """
    t, max_iter = check_tol(tol, max_iter, _method("wolfe").tol)
    K, batch, m = check_gram(gram, precision=precision)
    bid, p = block_ids(block_sizes, m)
    Kn, scale = normalize(K)
    B = K.shape[0]
    iters = np.zeros(B, dtype=np.int64)
    if p == m or B == 0:
        alpha = np.ones((B, m))
    else:
        alpha, iters = wolfe_batch(Kn, bid, p, t, max_iter, "product")
    zero = scale <= 0
    alpha[zero] = uniform_weights(bid, p)
    iters[zero] = 0
    return finish(alpha, K, Kn, bid, p, iters, batch, gram.device, "product-wolfe")
