"""Perturbation sets S for the inner variable δ.

Layout convention (every method follows it)
-------------------------------------------
``delta`` has shape ``[*lead, B, *event]``: ``B`` examples, each example's δ made of the trailing
``event_ndim`` dims, and optional extra leading dims ``lead`` (e.g. ``m`` restarts stacked as
``[m, B, 3, 32, 32]`` with ``event_ndim=3``). ``event_ndim`` defaults to ``delta.ndim - 1``
(one leading example dim, no ``lead``). Norms are taken over the event dims of each example, so
per-example results have shape ``[*lead, B]``.

``eps`` (and a step size) is a float or a tensor of shape ``[B]`` (one value per example).

Norm balls may also bound the perturbed input: ``lower ≤ x + δ ≤ upper`` elementwise (e.g.
``[0, 1]`` for images). Methods that need it then take the clean input ``x`` of shape
``[B, *event]``, broadcast against ``lead``; the bounds assume a valid ``x`` with
``lower ≤ x ≤ upper``.

Exactness of :meth:`PerturbationSet.project`
--------------------------------------------
* ``LinfBall`` (with or without bounds) and ``Box``: exact Euclidean projection (an elementwise
  clamp to the intersection interval).
* ``L2Ball``, ``L1Ball`` without bounds: exact Euclidean projection (L1: sort-based,
  Duchi et al. 2008).
* ``L2Ball``, ``L1Ball`` with bounds: the composition "project onto the ball, then clamp
  ``x + δ`` into the bounds". For ``x`` inside the bounds the clamp only shrinks each ``|δ_i|``,
  so the result is feasible (in the ball and in the bounds), but it is not the exact projection
  onto the intersection.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Box", "L1Ball", "L2Ball", "LinfBall", "PerturbationSet"]

Scalar = float | Tensor


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _resolve_event_ndim(ndim: int, event_ndim: int | None) -> int:
    """The number of event dims of a ``[*lead, B, *event]`` tensor with ``ndim`` dims."""
    if ndim < 1:
        raise ValueError(
            "delta needs at least one (batch) dim: layout [*lead, B, *event], got a 0-dim tensor"
        )
    if event_ndim is None:
        return ndim - 1
    if isinstance(event_ndim, bool) or not isinstance(event_ndim, int):
        raise TypeError(f"event_ndim must be an int, got {event_ndim!r}")
    if not 0 <= event_ndim <= ndim - 1:
        raise ValueError(
            f"event_ndim must be in [0, {ndim - 1}] for a tensor with {ndim} dims "
            f"(layout [*lead, B, *event]), got {event_ndim}"
        )
    return event_ndim


def _check_nonneg(value: float | int | Tensor, name: str) -> float | Tensor:
    """Validate a radius: a finite float ≥ 0 or a 0-/1-dim tensor of them."""
    if isinstance(value, Tensor):
        if value.ndim > 1:
            raise ValueError(
                f"{name} tensor must be 0-dim or 1-dim (one value per example, shape [B]), "
                f"got shape {tuple(value.shape)}"
            )
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
        with torch.no_grad():
            v = value.detach().double()
            bad = torch.isnan(v) | (v < 0)
            if bool(bad.any()):
                raise ValueError(f"{name} must be ≥ 0, got {v[bad].flatten()[0].item()}")
            if bool(torch.isinf(v).any()):
                raise ValueError(f"{name} must be finite, got inf")
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a float or a tensor, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a float or a tensor, got {value!r}") from None
    if math.isnan(f) or f < 0:
        raise ValueError(f"{name} must be ≥ 0, got {f}")
    if math.isinf(f):
        raise ValueError(f"{name} must be finite, got {f}")
    return f


def _check_bound(value: float | int | Tensor | None, name: str) -> float | Tensor | None:
    """Validate one elementwise bound: None, a float or a tensor (no NaN)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {value.dtype}")
        if bool(torch.isnan(value.detach().double()).any()):
            raise ValueError(f"{name} must not contain NaN")
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        return value.detach()
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a float or a tensor, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a float or a tensor, got {value!r}") from None
    if math.isnan(f):
        raise ValueError(f"{name} must not be NaN")
    return f


def _check_order(lower: float | Tensor | None, upper: float | Tensor | None) -> None:
    """Raise ValueError unless ``lower ≤ upper`` elementwise (both broadcast together)."""
    if lower is None or upper is None:
        return
    lo = torch.as_tensor(lower).detach().to("cpu", torch.float64)
    hi = torch.as_tensor(upper).detach().to("cpu", torch.float64)
    try:
        bad = lo > hi
    except RuntimeError as err:
        raise ValueError(
            f"lower (shape {tuple(lo.shape)}) and upper (shape {tuple(hi.shape)}) "
            "must be broadcastable"
        ) from err
    if bool(bad.any()):
        lo_b, hi_b = torch.broadcast_tensors(lo, hi)
        raise ValueError(
            "lower must be ≤ upper elementwise, got lower = "
            f"{lo_b[bad].flatten()[0].item()} > upper = {hi_b[bad].flatten()[0].item()}"
        )


def _per_example(value: Scalar, like: Tensor, event_ndim: int, name: str) -> Tensor:
    """``value`` (float, 0-dim or ``[B]`` tensor) as a tensor broadcastable to ``like``.

    ``like`` has layout ``[*lead, B, *event]`` with ``event_ndim`` event dims; a ``[B]`` value
    becomes ``[B, 1, ..., 1]`` (``event_ndim`` ones).
    """
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t
    if t.ndim != 1:
        raise ValueError(f"{name} must be a float or a tensor of shape [B], got {tuple(t.shape)}")
    b = like.shape[like.ndim - event_ndim - 1]
    if t.shape[0] != b:
        raise ValueError(
            f"{name} has length len({name}) = {t.shape[0]} but the batch has B = {b} examples "
            f"(delta shape {tuple(like.shape)}, event_ndim={event_ndim})"
        )
    return t.reshape(b, *([1] * event_ndim))


def _as_tensor(value: Scalar, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _flatten_event(t: Tensor, event_ndim: int) -> Tensor:
    """``[*lead, B, *event]`` → ``[*lead, B, D]`` (D = prod(event); D = 1 when event_ndim = 0)."""
    return t.reshape(*t.shape[: t.ndim - event_ndim], -1)


def _fmt(value: Scalar | None) -> str:
    if isinstance(value, Tensor):
        if value.ndim == 0:
            return f"{value.item():.4g}"
        return "tensor[" + ", ".join(str(s) for s in value.shape) + "]"
    return f"{value:.4g}"


def _project_l1(v: Tensor, eps: Tensor) -> Tensor:
    """Exact Euclidean projection of each row of ``v`` ``[..., D]`` onto ``{‖w‖₁ ≤ eps}``.

    ``eps`` broadcasts against ``[..., 1]``. Sort-based soft-thresholding (Duchi et al. 2008):
    ``w = sign(v) · max(|v| − θ, 0)`` with ``θ ≥ 0`` the smallest value giving ``‖w‖₁ ≤ eps``.
    Rows already inside the ball are returned unchanged; ``eps = 0`` gives 0.
    """
    a = v.abs()
    l1 = a.sum(dim=-1, keepdim=True)
    u = torch.sort(a, dim=-1, descending=True).values
    css = u.cumsum(dim=-1)
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    # ρ = the largest j with u_j > (css_j − eps) / j  (0 only when eps = 0)
    active = u * k > css - eps
    rho = (active.to(v.dtype) * k).amax(dim=-1, keepdim=True).clamp_min(1)
    css_rho = css.gather(-1, rho.long() - 1)
    theta = ((css_rho - eps) / rho).clamp_min(0)
    w = torch.sign(v) * (a - theta).clamp_min(0)
    return torch.where(l1 <= eps, v, w)


# --------------------------------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------------------------------


class PerturbationSet(abc.ABC):
    """A compact set S for δ; all methods use the ``[*lead, B, *event]`` layout (see module doc)."""

    @abc.abstractmethod
    def project(
        self, delta: Tensor, x: Tensor | None = None, *, event_ndim: int | None = None
    ) -> Tensor:
        """Euclidean projection of ``delta`` ``[*lead, B, *event]`` onto S (same shape)."""

    @abc.abstractmethod
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
        """A random point of S of shape ``shape = [*lead, B, *event]`` (a random restart)."""

    @abc.abstractmethod
    def ascent_step(
        self, delta: Tensor, grad: Tensor, step_size: Scalar, *, event_ndim: int | None = None
    ) -> Tensor:
        """``delta + step_size · d(grad)``, d the steepest-ascent direction; not projected."""

    @abc.abstractmethod
    def dual_norm(self, grad: Tensor, event_ndim: int | None = None) -> Tensor:
        """Per-example gain ``⟨grad, d(grad)⟩`` of a unit ascent step, shape ``[*lead, B]``."""

    @abc.abstractmethod
    def contains(
        self,
        delta: Tensor,
        x: Tensor | None = None,
        *,
        event_ndim: int | None = None,
        atol: float = 1e-6,
        rtol: float = 1e-5,
    ) -> Tensor:
        """Boolean membership ``[*lead, B]`` of each example's δ in S (up to tolerances)."""

    @staticmethod
    def _step(step_size: Scalar, like: Tensor, event_ndim: int) -> Tensor:
        return _per_example(step_size, like, event_ndim, "step_size")

    @staticmethod
    def _resolve_random_args(
        shape: Sequence[int],
        generator: torch.Generator | None,
        dtype: torch.dtype | None,
        device: torch.device | str | None,
        x: Tensor | None,
    ) -> tuple[torch.Size, torch.dtype, torch.device | str | None]:
        size = torch.Size(shape)
        if dtype is None:
            dtype = x.dtype if x is not None else torch.get_default_dtype()
        if device is None:
            if x is not None:
                device = x.device
            elif generator is not None:
                device = generator.device
        return size, dtype, device


# --------------------------------------------------------------------------------------------------
# norm balls
# --------------------------------------------------------------------------------------------------


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
        self._eps = _check_nonneg(eps, "eps")
        self._lower = _check_bound(lower, "lower")
        self._upper = _check_bound(upper, "upper")
        _check_order(self._lower, self._upper)

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
        parts = [f"eps={_fmt(self._eps)}"]
        if self._lower is not None:
            parts.append(f"lower={_fmt(self._lower)}")
        if self._upper is not None:
            parts.append(f"upper={_fmt(self._upper)}")
        return f"{self._name}({', '.join(parts)})"

    # -- per-norm pieces (on flattened [..., D] tensors) ----------------------------------------
    @abc.abstractmethod
    def _norm_flat(self, v: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _dual_norm_flat(self, g: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _project_flat(self, v: Tensor, eps: Tensor) -> Tensor: ...

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
        """Clamp δ so that ``lower ≤ x + δ ≤ upper`` (δ unchanged where already inside)."""
        if x is None:
            return delta
        lo = None if self._lower is None else _as_tensor(self._lower, delta) - x
        hi = None if self._upper is None else _as_tensor(self._upper, delta) - x
        return torch.clamp(delta, min=lo, max=hi)

    # -- public API ----------------------------------------------------------------------------
    def norm(self, delta: Tensor, event_ndim: int | None = None) -> Tensor:
        """The set's norm of each example's δ: ``[*lead, B, *event]`` → ``[*lead, B]``."""
        e = _resolve_event_ndim(delta.ndim, event_ndim)
        return self._norm_flat(_flatten_event(delta, e))

    def dual_norm(self, grad: Tensor, event_ndim: int | None = None) -> Tensor:
        """Dual norm of each example's gradient ``[*lead, B, *event]`` → ``[*lead, B]``.

        Equals ``max_{‖d‖ ≤ 1} ⟨grad, d⟩``, the gain of a unit :meth:`ascent_step`.
        """
        e = _resolve_event_ndim(grad.ndim, event_ndim)
        return self._dual_norm_flat(_flatten_event(grad, e))

    def project(
        self, delta: Tensor, x: Tensor | None = None, *, event_ndim: int | None = None
    ) -> Tensor:
        """Project ``delta`` ``[*lead, B, *event]`` onto the ball, then into the x-bounds.

        ``x`` ``[B, *event]`` is required iff the set has bounds. Exact for L∞ (with or without
        bounds) and for L2/L1 without bounds; see the module docstring.
        """
        e = _resolve_event_ndim(delta.ndim, event_ndim)
        xb = self._bounds_x(x, delta, "project")
        flat = _flatten_event(delta, e)
        eps = _per_example(self._eps, flat, 1, "eps")
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
        e = _resolve_event_ndim(len(size), event_ndim)
        if self.has_bounds and x is None:
            raise ValueError(
                f"{self!r} bounds x + δ (lower={self._lower}, upper={self._upper}); "
                "random needs the clean input x of shape [B, *event]"
            )
        prefix = size[: len(size) - e]
        d = math.prod(size[len(size) - e :])
        unit = self._unit_sample_flat(torch.Size((*prefix, d)), generator, dtype, device)
        delta = (unit * _per_example(self._eps, unit, 1, "eps")).reshape(size)
        return self._clamp_bounds(delta, self._bounds_x(x, delta, "random"))

    def ascent_step(
        self, delta: Tensor, grad: Tensor, step_size: Scalar, *, event_ndim: int | None = None
    ) -> Tensor:
        """``delta + step_size · d``, ``d`` the unit-norm steepest-ascent direction for ``grad``.

        ``step_size``: float or ``[B]`` tensor. The linear gain ``⟨grad, step_size · d⟩`` equals
        ``step_size · dual_norm(grad)``. Not projected.
        """
        e = _resolve_event_ndim(delta.ndim, event_ndim)
        if grad.shape != delta.shape:
            raise ValueError(
                f"grad shape {tuple(grad.shape)} must equal delta shape {tuple(delta.shape)}"
            )
        flat = _flatten_event(grad, e)
        direction = self._direction_flat(flat).reshape(delta.shape).to(delta.dtype)
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
        e = _resolve_event_ndim(delta.ndim, event_ndim)
        xb = self._bounds_x(x, delta, "contains")
        n = self.norm(delta, e)
        eps = _per_example(self._eps, n, 0, "eps")
        ok = n <= eps * (1 + rtol) + atol
        if xb is not None:
            z = xb + delta
            inside = torch.ones_like(z, dtype=torch.bool)
            if self._lower is not None:
                inside = inside & (z >= _as_tensor(self._lower, z) - atol)
            if self._upper is not None:
                inside = inside & (z <= _as_tensor(self._upper, z) + atol)
            ok = ok & _flatten_event(inside, e).all(dim=-1)
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

    def _project_flat(self, v: Tensor, eps: Tensor) -> Tensor:
        return torch.clamp(v, min=-eps, max=eps)

    def _direction_flat(self, g: Tensor) -> Tensor:
        return torch.sign(g)

    def _unit_sample_flat(
        self,
        shape: torch.Size,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> Tensor:
        u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        return 2 * u - 1


class L2Ball(_NormBall):
    """L2 ball ``{‖δ‖₂ ≤ eps}`` (optionally ``lower ≤ x + δ ≤ upper``); projection rescales.

    Ascent direction ``grad / ‖grad‖₂`` (0 at grad = 0); dual norm ``‖grad‖₂``; random start
    uniform in the ball (Gaussian direction, radius ``eps·U^(1/d)``).
    """

    _name = "L2Ball"

    def _norm_flat(self, v: Tensor) -> Tensor:
        return torch.linalg.vector_norm(v, dim=-1)

    def _dual_norm_flat(self, g: Tensor) -> Tensor:
        return torch.linalg.vector_norm(g, dim=-1)

    def _project_flat(self, v: Tensor, eps: Tensor) -> Tensor:
        n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        outside = n > eps
        safe = torch.where(outside, n, torch.ones_like(n))
        return v * torch.where(outside, eps / safe, torch.ones_like(n))

    def _direction_flat(self, g: Tensor) -> Tensor:
        n = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
        return g / torch.where(n > 0, n, torch.ones_like(n))

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

    def _project_flat(self, v: Tensor, eps: Tensor) -> Tensor:
        return _project_l1(v, eps)

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


# --------------------------------------------------------------------------------------------------
# box
# --------------------------------------------------------------------------------------------------


class Box(PerturbationSet):
    """The box ``{lower ≤ δ ≤ upper}`` elementwise (e.g. y ∈ [0, 1] for toy problems).

    ``lower``/``upper``: floats or tensors broadcastable to one example's event shape. Exact
    projection (clamp); L∞ geometry: ascent direction ``sign(grad)``, dual norm ``‖grad‖₁``.
    The ``x`` arguments are accepted for a uniform interface and ignored.
    """

    def __init__(self, lower: float | Tensor, upper: float | Tensor) -> None:
        lo = _check_bound(lower, "lower")
        hi = _check_bound(upper, "upper")
        if lo is None or hi is None:
            raise ValueError("Box needs both lower and upper bounds")
        _check_order(lo, hi)
        self._lower: float | Tensor = lo
        self._upper: float | Tensor = hi

    @property
    def lower(self) -> float | Tensor:
        """Elementwise lower bound on δ."""
        return self._lower

    @property
    def upper(self) -> float | Tensor:
        """Elementwise upper bound on δ."""
        return self._upper

    def __repr__(self) -> str:
        return f"Box(lower={_fmt(self._lower)}, upper={_fmt(self._upper)})"

    def project(
        self, delta: Tensor, x: Tensor | None = None, *, event_ndim: int | None = None
    ) -> Tensor:
        """Clamp ``delta`` ``[*lead, B, *event]`` into the box (exact projection)."""
        _resolve_event_ndim(delta.ndim, event_ndim)
        return torch.clamp(
            delta, min=_as_tensor(self._lower, delta), max=_as_tensor(self._upper, delta)
        )

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
        """Uniform sample in the box, shape ``[*lead, B, *event]``; needs finite bounds."""
        size, dtype, device = self._resolve_random_args(shape, generator, dtype, device, x)
        _resolve_event_ndim(len(size), event_ndim)
        u = torch.rand(size, generator=generator, dtype=dtype, device=device)
        lo, hi = _as_tensor(self._lower, u), _as_tensor(self._upper, u)
        if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
            raise ValueError(f"{self!r}.random needs finite lower and upper bounds")
        return torch.clamp(lo + (hi - lo) * u, min=lo, max=hi)

    def ascent_step(
        self, delta: Tensor, grad: Tensor, step_size: Scalar, *, event_ndim: int | None = None
    ) -> Tensor:
        """``delta + step_size · sign(grad)`` (``step_size``: float or ``[B]``); not projected."""
        e = _resolve_event_ndim(delta.ndim, event_ndim)
        if grad.shape != delta.shape:
            raise ValueError(
                f"grad shape {tuple(grad.shape)} must equal delta shape {tuple(delta.shape)}"
            )
        return delta + self._step(step_size, delta, e) * torch.sign(grad).to(delta.dtype)

    def dual_norm(self, grad: Tensor, event_ndim: int | None = None) -> Tensor:
        """``‖grad‖₁`` per example, ``[*lead, B]``: the gain of a unit :meth:`ascent_step`."""
        e = _resolve_event_ndim(grad.ndim, event_ndim)
        return _flatten_event(grad, e).abs().sum(dim=-1)

    def contains(
        self,
        delta: Tensor,
        x: Tensor | None = None,
        *,
        event_ndim: int | None = None,
        atol: float = 1e-6,
        rtol: float = 1e-5,
    ) -> Tensor:
        """``[*lead, B]`` bools: every entry within ``[lower − atol, upper + atol]``."""
        e = _resolve_event_ndim(delta.ndim, event_ndim)
        inside = (delta >= _as_tensor(self._lower, delta) - atol) & (
            delta <= _as_tensor(self._upper, delta) + atol
        )
        return _flatten_event(inside, e).all(dim=-1)


from minimax.sets.simplex import Simplex  # noqa: E402  (needs PerturbationSet defined above)

__all__ += ["Simplex"]
