"""The probability simplex Δ_k = {δ ∈ R^k : δ ≥ 0, Σ_j δ_j = 1}: mixed strategies over k pieces.

A finite max over k pieces, max_j q_j(θ), is the max over Δ_k of the linear form
Σ_j δ_j q_j(θ); its maximizers are the vertices e_j of the maximal pieces (and their hull).
`minimax.inner.Enumerate` evaluates the k vertices exactly; `PGD` can also run on the simplex.

Layout: ``delta`` is ``[*lead, B, k]``; the event is always the last dim (k entries), so
``event_ndim`` is 1 (passing another value is a ValueError). Per-example results are ``[*lead, B]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from minimax.sets.base import PerturbationSet, Scalar

__all__ = ["Simplex", "project_simplex"]


def project_simplex(v: Tensor) -> Tensor:
    """Exact Euclidean projection of each row of ``v`` ``[..., k]`` onto Δ_k (same shape).

    Sort-based, O(k log k) per row: with u the entries sorted in decreasing order and
    ρ = max{j : u_j > (Σ_{i≤j} u_i − 1)/j}, the projection is max(v − τ, 0) with
    τ = (Σ_{i≤ρ} u_i − 1)/ρ (Held, Wolfe and Crowder 1974; Duchi et al. 2008).
    Rows are shifted by their max first (the projection commutes with adding a constant to
    every entry), so large entries lose no precision in the cumulative sum.
    """
    shifted = v - v.amax(dim=-1, keepdim=True)  # max entry 0: the cumsum stays small
    u = torch.sort(shifted, dim=-1, descending=True).values
    css = u.cumsum(dim=-1) - 1
    j = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    support = u * j > css  # true for j = 1 (u_1 = 0 > −1), and a prefix of the sorted entries
    rho = support.sum(dim=-1, keepdim=True)
    tau = css.gather(-1, rho - 1) / rho.to(v.dtype)
    return (shifted - tau).clamp_min(0)


def _centred(grad: Tensor) -> tuple[Tensor, Tensor]:
    """(c / s, s) per row: c = grad − mean(grad), s = max |c| (1 where c = 0), so that norms of
    tiny or huge gradients neither underflow nor overflow."""
    c = grad - grad.mean(dim=-1, keepdim=True)
    s = c.abs().amax(dim=-1, keepdim=True)
    s = torch.where(s > 0, s, torch.ones_like(s))
    return c / s, s


def _check_event(shape: Sequence[int], k: int, event_ndim: int | None, name: str = "delta") -> None:
    if event_ndim is not None and event_ndim != 1:
        raise ValueError(
            f"Simplex({k}) has one event dim (the last, with k = {k} entries); got event_ndim = "
            f"{event_ndim}"
        )
    if len(shape) < 2 or shape[-1] != k:
        raise ValueError(
            f"{name} must have shape [*lead, B, {k}] for Simplex({k}), got {tuple(shape)}"
        )


class Simplex(PerturbationSet):
    """Δ_k: δ ≥ 0 with Σ_j δ_j = 1, per example; δ has shape ``[*lead, B, k]``.

    - `project`: exact Euclidean projection (sort-based, `project_simplex`).
    - `random`: uniform on Δ_k (the flat Dirichlet): independent Exp(1) draws, normalised.
    - `ascent_step`: Euclidean steepest ascent within the simplex's affine hull: the gradient
      minus its mean (the component that keeps Σ_j δ_j fixed), scaled to unit L2 norm; the
      caller projects (projected, normalised gradient ascent). `dual_norm` is the L2 norm of that
      centred gradient, the gain of a unit step.
    - `vertices`: the k one-hot points e_1..e_k (the pure strategies).

    The ``x`` arguments are accepted for a uniform interface and ignored.
    """

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int (the number of pieces), got {k!r}")
        if k < 1:
            raise ValueError(f"k must be ≥ 1 (the number of pieces), got {k}")
        self.k = k

    def __repr__(self) -> str:
        return f"Simplex({self.k})"

    def vertices(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """The k vertices e_1..e_k as the rows of a ``[k, k]`` identity matrix."""
        return torch.eye(self.k, dtype=dtype or torch.get_default_dtype(), device=device)

    def project(
        self, delta: Tensor, x: Tensor | None = None, *, event_ndim: int | None = None
    ) -> Tensor:
        """Exact Euclidean projection of each example's δ ``[*lead, B, k]`` onto Δ_k."""
        _check_event(delta.shape, self.k, event_ndim)
        return project_simplex(delta)

    def random(
        self,
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        x: Tensor | None = None,
        event_ndim: int | None = None,
    ) -> Tensor:
        """Uniform points of Δ_k, shape ``[*lead, B, k]``: E / Σ E with E_j ~ Exp(1) i.i.d."""
        size, dtype, device = self._resolve_random_args(shape, generator, dtype, device, x)
        _check_event(size, self.k, event_ndim, "shape")
        e = torch.empty(size, dtype=dtype, device=device).exponential_(generator=generator)
        return e / e.sum(dim=-1, keepdim=True)

    def ascent_step(
        self, delta: Tensor, grad: Tensor, step_size: Scalar, *, event_ndim: int | None = None
    ) -> Tensor:
        """``delta + step_size · c/‖c‖₂``, c = grad − mean(grad) per example (0 where c = 0).

        ``step_size``: float or ``[B]`` tensor. Not projected: follow with `project`.
        """
        _check_event(delta.shape, self.k, event_ndim)
        if grad.shape != delta.shape:
            raise ValueError(
                f"grad shape {tuple(grad.shape)} must equal delta shape {tuple(delta.shape)}"
            )
        c, _ = _centred(grad)
        n = torch.linalg.vector_norm(c, dim=-1, keepdim=True)
        direction = c / torch.where(n > 0, n, torch.ones_like(n))
        return delta + self._step(step_size, delta, 1) * direction.to(delta.dtype)

    def dual_norm(self, grad: Tensor, event_ndim: int | None = None) -> Tensor:
        """‖grad − mean(grad)‖₂ per example, ``[*lead, B]``: the gain of a unit `ascent_step`."""
        _check_event(grad.shape, self.k, event_ndim, "grad")
        c, scale = _centred(grad)
        return torch.linalg.vector_norm(c, dim=-1) * scale[..., 0]

    def contains(
        self,
        delta: Tensor,
        x: Tensor | None = None,
        *,
        event_ndim: int | None = None,
        atol: float = 1e-6,
        rtol: float = 1e-5,
    ) -> Tensor:
        """``[*lead, B]`` bools: every entry ≥ −atol and |Σ_j δ_j − 1| ≤ atol + rtol."""
        _check_event(delta.shape, self.k, event_ndim)
        nonneg = (delta >= -atol).all(dim=-1)
        return nonneg & ((delta.sum(dim=-1) - 1).abs() <= atol + rtol)
