"""Norm balls {‖δ‖ ≤ ε} per example (L∞, L2, L1), optionally with bounds on x + δ."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from minimax.sets.base import (
    PerturbationSet,
    Scalar,
    as_tensor_like,
    check_bound,
    check_order,
    check_radius,
    flatten_event,
    format_value,
    per_example_value,
    resolve_event_ndim,
)

__all__ = ["L1Ball", "L2Ball", "LinfBall", "l2_norm", "project_l1", "unit_l2"]


def project_l1(v: Tensor, eps: float | Tensor) -> Tensor:
    """Exact Euclidean projection of each row of ``v`` ``[..., D]`` onto ``{‖w‖₁ ≤ eps}``.

    ``eps`` broadcasts against ``[..., 1]``. Sort-based soft-thresholding (Duchi et al. 2008):
    ``w = sign(v) · max(|v| − θ, 0)`` with ``θ ≥ 0`` the smallest value giving ``‖w‖₁ ≤ eps``.
    Rows already inside the ball are returned unchanged; ``eps = 0`` gives 0.

    Computed in units of eps on the gaps b_j = (u_1 − u_j)/eps below the largest entry u_1 (only
    gaps < 1 can be active), so no sum overflows or loses the threshold: huge (1e308) and tiny
    (1e-300) rows project as well as unit ones.
    """
    a = v.abs()
    eps = torch.as_tensor(eps, dtype=v.dtype, device=v.device)
    positive = eps > 0
    unit = torch.where(positive, eps, torch.ones_like(eps))
    u = torch.sort(a, dim=-1, descending=True).values
    gaps = ((u[..., :1] - u) / unit).clamp(max=1.0)  # [..., D], 0 at the top, ≤ 1
    css = gaps.cumsum(dim=-1)
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    # ρ = the largest j with Σ_{i ≤ j} (b_j − b_i) < 1; j = 1 always qualifies
    active = k * gaps - css < 1
    rho = (active.to(v.dtype) * k).amax(dim=-1, keepdim=True).clamp_min(1)
    level = (1 + css.gather(-1, rho.long() - 1)) / rho  # (u_1 − θ)/eps, in (0, 1]
    below = ((u[..., :1] - a) / unit).clamp(max=1.0)
    w = torch.sign(v) * unit * (level - below).clamp_min(0)
    inside = a.sum(dim=-1, keepdim=True) <= eps
    return torch.where(inside, v, torch.where(positive, w, torch.zeros_like(v)))


def l2_norm(v: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    """‖v‖₂ along ``dim``, scaled by the largest magnitude first so that neither huge (1e200)
    nor tiny (1e-300) entries overflow or underflow in the squares."""
    scale = v.abs().amax(dim=dim, keepdim=True)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    n = safe * torch.linalg.vector_norm(v / safe, dim=dim, keepdim=True)
    n = torch.where(scale > 0, n, torch.zeros_like(n))
    return n if keepdim else n.squeeze(dim)


def unit_l2(v: Tensor) -> Tensor:
    """Each row of ``v`` ``[..., D]`` divided by its L2 norm (0 rows stay 0), computed on the row
    scaled by its largest magnitude (no underflow or overflow)."""
    scale = v.abs().amax(dim=-1, keepdim=True)
    u = v / torch.where(scale > 0, scale, torch.ones_like(scale))
    n = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    return u / torch.where(n > 0, n, torch.ones_like(n))


class _NormBall(PerturbationSet):
    """``{δ : ‖δ‖ ≤ eps}`` per example, optionally with ``lower ≤ x + δ ≤ upper``."""

    _name = "NormBall"

    def __init__(
        self,
        eps: float | Tensor,
        *,
        lower: float | Tensor | None = None,
        upper: float | Tensor | None = None,
    ) -> None:
        self._eps = check_radius(eps, "eps")
        self._lower = check_bound(lower, "lower")
        self._upper = check_bound(upper, "upper")
        check_order(self._lower, self._upper)

    # -- attributes ----------------------------------------------------------------------------
    @property
    def eps(self) -> float | Tensor:
        """The radius: a float or a ``[B]`` tensor."""
        return self._eps

    @property
    def lower(self) -> float | Tensor | None:
        """Lower bound on ``x + δ`` (None: unbounded)."""
        return self._lower

    @property
    def upper(self) -> float | Tensor | None:
        """Upper bound on ``x + δ`` (None: unbounded)."""
        return self._upper

    @property
    def has_bounds(self) -> bool:
        """Whether ``x + δ`` is bounded (then methods that need it take ``x``)."""
        return self._lower is not None or self._upper is not None

    def __repr__(self) -> str:
        parts = [f"eps={format_value(self._eps)}"]
        if self._lower is not None:
            parts.append(f"lower={format_value(self._lower)}")
        if self._upper is not None:
            parts.append(f"upper={format_value(self._upper)}")
        return f"{self._name}({', '.join(parts)})"

    # -- per-norm pieces (on flattened [..., D] tensors) ----------------------------------------
    @abc.abstractmethod
    def _norm_flat(self, v: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _dual_norm_flat(self, g: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _project_flat(self, v: Tensor, eps: float | Tensor) -> Tensor:
        """Project rows v [..., D] onto the ball of radius eps (a float, or [..., 1])."""

    @abc.abstractmethod
    def _direction_flat(self, g: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _unit_sample_flat(
        self,
        shape: torch.Size,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> Tensor: ...

    # -- bounds --------------------------------------------------------------------------------
    def _bounds_x(self, x: Tensor | None, delta: Tensor, method: str) -> Tensor | None:
        if not self.has_bounds:
            return None
        if x is None:
            raise ValueError(
                f"{self!r} bounds x + δ (lower={self._lower}, upper={self._upper}); "
                f"{method} needs the clean input x of shape [B, *event]"
            )
        return x.to(dtype=delta.dtype, device=delta.device)

    def _clamp_bounds(self, delta: Tensor, x: Tensor | None) -> Tensor:
        """Clamp δ so that ``lower ≤ x + δ ≤ upper`` (δ unchanged where already inside).

        An ``x`` outside [lower, upper] is first clipped into it, so the clamp only ever moves δ
        towards 0: δ stays in the ball (|δ| ≤ ε), and x + δ is never further outside the bounds
        than x itself (issue 21: clamping to lower − x gave |δ| far above ε)."""
        if x is None:
            return delta
        return torch.clamp(delta, *self._delta_bounds(x, delta))

    def _delta_bounds(self, x: Tensor, like: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """(lower − x, upper − x) at ``like``'s dtype and device, x clipped into the bounds."""
        lo_b = None if self._lower is None else as_tensor_like(self._lower, like)
        hi_b = None if self._upper is None else as_tensor_like(self._upper, like)
        xc = torch.clamp(x, min=lo_b, max=hi_b)
        return (None if lo_b is None else lo_b - xc), (None if hi_b is None else hi_b - xc)

    # -- public API ----------------------------------------------------------------------------
    def norm(self, delta: Tensor, event_ndim: int | None = None) -> Tensor:
        """The set's norm of each example's δ: ``[*lead, B, *event]`` → ``[*lead, B]``."""
        e = resolve_event_ndim(delta.ndim, event_ndim)
        return self._norm_flat(flatten_event(delta, e))

    def dual_norm(self, grad: Tensor, event_ndim: int | None = None) -> Tensor:
        """Dual norm of each example's gradient ``[*lead, B, *event]`` → ``[*lead, B]``.

        Equals ``max_{‖d‖ ≤ 1} ⟨grad, d⟩``, the gain of a unit :meth:`ascent_step`.
        """
        e = resolve_event_ndim(grad.ndim, event_ndim)
        return self._dual_norm_flat(flatten_event(grad, e))

    def project(
        self, delta: Tensor, x: Tensor | None = None, *, event_ndim: int | None = None
    ) -> Tensor:
        """Project ``delta`` ``[*lead, B, *event]`` onto the ball, then into the x-bounds.

        ``x`` ``[B, *event]`` is required iff the set has bounds; an ``x`` outside the bounds is
        clipped into them first, so the result always lies in the ball. Exact for L∞ (with or
        without bounds) and for L2/L1 without bounds; see the module docstring.
        """
        e = resolve_event_ndim(delta.ndim, event_ndim)
        xb = self._bounds_x(x, delta, "project")
        flat = flatten_event(delta, e)
        # a float radius stays a Python scalar (scalar kernels, no [1]-tensor broadcast)
        eps = (
            self._eps
            if isinstance(self._eps, float)
            else per_example_value(self._eps, flat, 1, "eps")
        )
        out = self._project_flat(flat, eps).reshape(delta.shape)
        return self._clamp_bounds(out, xb)

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
        """Uniform sample in the ball, shape ``[*lead, B, *event]``, then clamped into the x-bounds.

        ``dtype``/``device`` default to ``x``'s (else the default dtype / the generator's device).
        Reproducible: the same seeded ``generator`` gives the same output.
        """
        size, dtype, device = self._resolve_random_args(shape, generator, dtype, device, x)
        e = resolve_event_ndim(len(size), event_ndim)
        if self.has_bounds and x is None:
            raise ValueError(
                f"{self!r} bounds x + δ (lower={self._lower}, upper={self._upper}); "
                "random needs the clean input x of shape [B, *event]"
            )
        prefix = size[: len(size) - e]
        d = math.prod(size[len(size) - e :])
        unit = self._unit_sample_flat(torch.Size((*prefix, d)), generator, dtype, device)
        delta = (unit * per_example_value(self._eps, unit, 1, "eps")).reshape(size)
        return self._clamp_bounds(delta, self._bounds_x(x, delta, "random"))

    def ascent_step(
        self, delta: Tensor, grad: Tensor, step_size: Scalar, *, event_ndim: int | None = None
    ) -> Tensor:
        """``delta + step_size · d``, ``d`` the unit-norm steepest-ascent direction for ``grad``.

        ``step_size``: float or ``[B]`` tensor. The linear gain ``⟨grad, step_size · d⟩`` equals
        ``step_size · dual_norm(grad)``. Not projected.
        """
        e = resolve_event_ndim(delta.ndim, event_ndim)
        if grad.shape != delta.shape:
            raise ValueError(
                f"grad shape {tuple(grad.shape)} must equal delta shape {tuple(delta.shape)}"
            )
        flat = flatten_event(grad, e)
        direction = self._direction_flat(flat).reshape(delta.shape).to(delta.dtype)
        return self._add_step(delta, direction, step_size, e)

    def _add_step(self, delta: Tensor, direction: Tensor, step_size: Scalar, e: int) -> Tensor:
        """delta + step_size · direction."""
        return delta + self._step(step_size, delta, e) * direction

    def contains(
        self,
        delta: Tensor,
        x: Tensor | None = None,
        *,
        event_ndim: int | None = None,
        atol: float = 1e-6,
        rtol: float = 1e-5,
    ) -> Tensor:
        """``[*lead, B]`` bools: ``‖δ‖ ≤ eps·(1 + rtol) + atol``, ``x + δ`` in bounds ± atol."""
        e = resolve_event_ndim(delta.ndim, event_ndim)
        xb = self._bounds_x(x, delta, "contains")
        n = self.norm(delta, e)
        eps = per_example_value(self._eps, n, 0, "eps")
        ok = n <= eps * (1 + rtol) + atol
        if xb is not None:
            z = xb + delta
            inside = torch.ones_like(z, dtype=torch.bool)
            if self._lower is not None:
                inside = inside & (z >= as_tensor_like(self._lower, z) - atol)
            if self._upper is not None:
                inside = inside & (z <= as_tensor_like(self._upper, z) + atol)
            ok = ok & flatten_event(inside, e).all(dim=-1)
        return ok


class LinfBall(_NormBall):
    """L∞ ball ``{‖δ‖∞ ≤ eps}`` (optionally ``lower ≤ x + δ ≤ upper``); exact projection (clamp).

    Ascent direction ``sign(grad)``; dual norm ``‖grad‖₁``; random start uniform in the cube.
    """

    _name = "LinfBall"

    def _norm_flat(self, v: Tensor) -> Tensor:
        return v.abs().amax(dim=-1)

    def _dual_norm_flat(self, g: Tensor) -> Tensor:
        return g.abs().sum(dim=-1)

    def _project_flat(self, v: Tensor, eps: float | Tensor) -> Tensor:
        if isinstance(eps, float):  # torch.clamp's scalar overload
            return v.clamp(-eps, eps)
        return torch.clamp(v, min=-eps, max=eps)

    def _direction_flat(self, g: Tensor) -> Tensor:
        return torch.sign(g)

    def _add_step(self, delta: Tensor, direction: Tensor, step_size: Scalar, e: int) -> Tensor:
        # One fused pass for a float step: step · sign is exact, so the sum rounds as before.
        if isinstance(step_size, float):
            return torch.add(delta, direction, alpha=step_size)
        return super()._add_step(delta, direction, step_size, e)

    def _unit_sample_flat(
        self,
        shape: torch.Size,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> Tensor:
        if dtype in (torch.float32, torch.float64):  # one pass, bit for bit 2·rand − 1
            return torch.empty(shape, dtype=dtype, device=device).uniform_(
                -1, 1, generator=generator
            )
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        return 2 * u - 1


class L2Ball(_NormBall):
    """L2 ball ``{‖δ‖₂ ≤ eps}`` (optionally ``lower ≤ x + δ ≤ upper``); projection rescales.

    Ascent direction ``grad / ‖grad‖₂`` (0 at grad = 0); dual norm ``‖grad‖₂``; random start
    uniform in the ball (Gaussian direction, radius ``eps·U^(1/d)``).
    """

    _name = "L2Ball"

    def _norm_flat(self, v: Tensor) -> Tensor:
        return l2_norm(v)

    def _dual_norm_flat(self, g: Tensor) -> Tensor:
        return l2_norm(g)

    def _project_flat(self, v: Tensor, eps: float | Tensor) -> Tensor:
        # eps · v/‖v‖ from the scaled row: neither ‖v‖ (1e308) nor eps/‖v‖ (1e-300) misleads
        outside = l2_norm(v, keepdim=True) > eps
        return torch.where(outside, unit_l2(v) * eps, v)

    def _direction_flat(self, g: Tensor) -> Tensor:
        return unit_l2(g)

    def _unit_sample_flat(
        self,
        shape: torch.Size,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> Tensor:
        z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        n = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        direction = z / torch.where(n > 0, n, torch.ones_like(n))
        u = torch.rand((*shape[:-1], 1), generator=generator, dtype=dtype, device=device)
        return direction * u.pow(1.0 / shape[-1])


class L1Ball(_NormBall):
    """L1 ball ``{‖δ‖₁ ≤ eps}`` (optionally ``lower ≤ x + δ ≤ upper``).

    Exact sort-based projection (Duchi et al. 2008), vectorized over examples. Ascent step: sparse,
    along the coordinate with the largest ``|grad|`` (the first one on ties), with ``grad``'s sign;
    dual norm ``‖grad‖∞``. Random start uniform in the ball (exponential spacings, random signs).
    """

    _name = "L1Ball"

    def _norm_flat(self, v: Tensor) -> Tensor:
        return v.abs().sum(dim=-1)

    def _dual_norm_flat(self, g: Tensor) -> Tensor:
        return g.abs().amax(dim=-1)

    def _project_flat(self, v: Tensor, eps: float | Tensor) -> Tensor:
        return project_l1(v, eps)

    def _direction_flat(self, g: Tensor) -> Tensor:
        idx = g.abs().argmax(dim=-1, keepdim=True)
        return torch.zeros_like(g).scatter(-1, idx, torch.sign(g.gather(-1, idx)))

    def _unit_sample_flat(
        self,
        shape: torch.Size,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> Tensor:
        # (E_1..E_d) / (E_1 + ... + E_{d+1}), E_i ~ Exp(1) i.i.d., is uniform on
        # {y ≥ 0, Σy ≤ 1}; independent random signs make it uniform on the unit L1 ball.
        d = shape[-1]
        e = torch.empty((*shape[:-1], d + 1), dtype=dtype, device=device)
        e.exponential_(generator=generator)
        y = e[..., :d] / e.sum(dim=-1, keepdim=True)
        signs = torch.rand(shape, generator=generator, dtype=dtype, device=device) < 0.5
        return torch.where(signs, -y, y)
