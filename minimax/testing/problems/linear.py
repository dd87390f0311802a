"""A linear classifier under an L∞/L2/L1 ball: closed-form maximizers through the dual norm."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from minimax.problem import Batch, FunctionProblem
from minimax.sets import L1Ball, L2Ball, LinfBall
from minimax.testing.problems.base import (
    DTYPE,
    Nested,
    as_float64,
    call_repr,
    floats,
)
from minimax.testing.problems.known import KnownProblem

__all__ = ["linear_model"]

_NORMS: dict[str, type[LinfBall] | type[L2Ball] | type[L1Ball]] = {
    "inf": LinfBall,
    "2": L2Ball,
    "1": L1Ball,
}


# long: a family is one closure (objective, closed-form maximizers, repr) over its numbers
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
    ``max_δ g = ℓ(y(⟨w, x⟩ + b) − ε ‖w‖_q)`` with q the dual norm, at
    ``δ⋆ = ε·argmax_{‖u‖_p ≤ 1} ⟨−y w, u⟩``: L∞: −ε y sign(w) (both signs where w_i = 0);
    L2: −ε y w/‖w‖ (needs w ≠ 0); L1: −ε y sign(w_i) e_i for every i with maximal |w_i| (ties
    give several maximizers).

    θ = {"w": [n], "b": [1]}; labels y ∈ {−1, +1}.
    """
    wt, xt, yt = as_float64(w), as_float64(x), as_float64(y)
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

    problem = FunctionProblem(
        fn,
        {"w": wt.clone(), "b": as_float64([b])},
        _NORMS[norm](float(eps)),
        event_shape=(n,),
        name=f"linear_l{norm}",
    )
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
                choices = [
                    [float(eps) * float(torch.sign(si))]
                    if abs(float(si)) > tol
                    else [-float(eps), float(eps)]
                    for si in s
                ]
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
        call=call_repr(
            "linear_model",
            w=floats(w),
            b=float(b),
            x=floats(x),
            y=floats(y),
            eps=float(eps),
            norm=norm,
            loss=loss,
        ),
        info={"k": 0, "dim": n + 1, "B": xt.shape[0], "gap": gap, "norm": norm},
    )
