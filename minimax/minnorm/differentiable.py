"""A differentiable simplex-QP solve through cvxpylayers: gradients of the weights reach K."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

__all__ = ["cvxpylayers_weights", "pow2_scale"]


def pow2_scale(K: Tensor, e: Tensor) -> Tensor:
    """K [B, m, m] times 2^e [B], exactly and differentiably (torch.ldexp has no gradient): two
    factors 2^(e//2), 2^(e - e//2), each representable for any exponent of a finite float64."""
    half = torch.div(e, 2, rounding_mode="floor")
    one = torch.ones(e.shape, dtype=K.dtype, device=K.device)
    p1 = torch.ldexp(one, half.to(K.device))[:, None, None]
    p2 = torch.ldexp(one, (e - half).to(K.device))[:, None, None]
    return K * p1 * p2


# Ridge added to Kn before the Cholesky factor that parametrizes the cvxpylayers problem (Cholesky
# needs positive definiteness; singular K is common). It moves the objective by at most 1e-10
# (αᵀ(ridge·I)α ≤ ridge); larger only if rounding made Kn slightly indefinite.
_CVX_RIDGE = 1e-10

_LAYERS: dict[int, Any] = {}


def _cvx_layer(m: int) -> Any:
    """The cached cvxpylayers problem  min ‖Pα‖²  s.t.  α ≥ 0, 1ᵀα = 1  (P = Lᵀ, Kn = L Lᵀ)."""
    if m not in _LAYERS:
        try:
            import cvxpy as cp
            from cvxpylayers.torch import CvxpyLayer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "method='cvxpylayers' needs cvxpy and cvxpylayers: pip install 'minimax[diff]'"
            ) from exc
        a = cp.Variable(m)
        P = cp.Parameter((m, m))
        prob = cp.Problem(cp.Minimize(cp.sum_squares(P @ a)), [a >= 0, cp.sum(a) == 1])
        _LAYERS[m] = CvxpyLayer(prob, parameters=[P], variables=[a])
    return _LAYERS[m]


def cvxpylayers_weights(gram: Tensor, tol: float) -> Tensor:
    """Differentiable weights [B, m] for gram [..., m, m] (validated) through cvxpylayers."""
    m = gram.shape[-1]
    K = gram.to(torch.float64).reshape(-1, m, m)
    # Scale first (exactly, by a power of two), then symmetrize: no trace overflow, and subnormal
    # entries keep their bits.
    K = pow2_scale(K, -torch.frexp(K.detach().abs().amax(dim=(-2, -1))).exponent)
    K = 0.5 * (K + K.mT)
    scale = K.diagonal(dim1=-2, dim2=-1).sum(-1) / m
    eye = torch.eye(m, dtype=K.dtype, device=K.device)
    pos = (scale > 0)[:, None, None]
    Kn = torch.where(pos, K / torch.where(pos, scale[:, None, None], 1.0), eye)
    if m <= 2:
        if m == 1:
            return torch.ones_like(Kn[..., 0])
        den = Kn[:, 0, 0] + Kn[:, 1, 1] - 2.0 * Kn[:, 0, 1]
        safe = torch.where(den > 0, den, torch.ones_like(den))
        a = torch.where(den > 0, ((Kn[:, 1, 1] - Kn[:, 0, 1]) / safe).clamp(0.0, 1.0), 0.5)
        return torch.stack([a, 1.0 - a], dim=-1)
    for ridge in (_CVX_RIDGE, 1e-8 * m, 1e-6 * m):  # validation admits λ_min ≥ −1e-8·tr(Kn)
        L, info = torch.linalg.cholesky_ex(Kn + ridge * eye)
        if not bool((info != 0).any()):
            break
    layer = _cvx_layer(m)
    # Silence cvxpylayers' numpy-2 notices and SCS's frequent "Solved/Inaccurate" at eps 1e-10:
    # the result's KKT residual reports the accuracy actually reached.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Solved/Inaccurate")
        (w,) = layer(L.mT.contiguous().cpu(), solver_args={"eps": tol, "max_iters": 100_000})
    w = w.to(K.device).clamp_min(0.0)
    return w / w.sum(-1, keepdim=True)
