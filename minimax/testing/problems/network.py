"""A one-hidden-layer tanh network with a low-dimensional δ: grid enumeration and refinement."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from minimax.inner import local_maxima
from minimax.problem import ModuleProblem
from minimax.sets import LinfBall
from minimax.testing.problems.base import (
    DTYPE,
    Nested,
    as_float64,
    call_repr,
    floats,
)
from minimax.testing.problems.known import KnownProblem

__all__ = ["tanh_network"]


class _SignedOutput(nn.Module):
    """Per-example loss y·f(x) for a network with one output."""

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        return y * out[..., 0]


# long: a family is one closure (network, grid enumeration and refinement, repr)
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
    Wt, ct, vt, xt, yt = as_float64(W), as_float64(c), as_float64(v), as_float64(x), as_float64(y)
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
        call=call_repr(
            "tanh_network",
            W=floats(W),
            c=floats(c),
            v=floats(v),
            b0=float(b0),
            x=floats(x),
            y=floats(y),
            radius=r,
        ),
        info={"k": 0, "dim": d, "hidden": H, "B": xt.shape[0], "gap": float(gaps0.min())},
    )


def _compass(
    f: Callable[[Tensor], Tensor],
    start: Tensor,
    lo: float,
    hi: float,
    h0: float,
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
