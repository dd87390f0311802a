"""Gram blocks of n rows, accumulated in float64, in row blocks that fit a byte budget.

Two primitives the layer rules share:

- `rows_gram(rows, n, numel, budget)`: K = G Gᵀ for per-example gradients G [n, numel] of one
  layer, produced block by block by ``rows(start, stop) -> [stop − start, numel]``; when G does not
  fit the budget, row blocks are recomputed for the off-diagonal block pairs.
- `ghost_gram(u, v, budget)`: K_ij = Σ_{l,l'} ⟨u_il, u_jl'⟩ ⟨v_il, v_jl'⟩ for u [n, L, D] and
  v [n, L, C] (the per-example gradient of row i is Σ_l v_il u_ilᵀ), without forming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

ACC = torch.float64
RowGrads = Callable[[int, int], Tensor]
SLICE = 2**16  # columns (or positions) summed in the working dtype before a float64 accumulation


def work_dtype(t: Tensor) -> torch.dtype:
    """The dtype products are formed in: float64 for float64 inputs (exact to ~1e-16), else
    float32 (the gradients themselves carry float32 rounding; each partial sum covers at most
    `SLICE` terms and partial sums add up in float64, so K's error stays at that level).

    float64 also where float32 matrix products would be rounded further (TF32 on CUDA, or a
    float32 matmul precision below "highest", `torch.set_float32_matmul_precision`)."""
    reduced = torch.get_float32_matmul_precision() != "highest" or (
        t.is_cuda and torch.backends.cuda.matmul.allow_tf32
    )
    return ACC if t.dtype == ACC or reduced else torch.float32


def gram64(g: Tensor, h: Tensor | None = None, budget: int = 2**26) -> Tensor:
    """g hᵀ accumulated in float64 for g [n, p], h [k, p] (h = g by default): column slices of
    at most `SLICE` columns, each multiplied in `work_dtype`, with copies under ``budget`` bytes."""
    other = g if h is None else h
    n, p = g.shape
    dtype = work_dtype(g)
    itemsize = torch.finfo(dtype).bits // 8
    cols = max(1, min(SLICE, budget // (itemsize * (n + other.shape[0]))))
    out = torch.zeros(n, other.shape[0], dtype=ACC, device=g.device)
    for c in range(0, p, cols):
        a = g[:, c : c + cols].to(dtype)
        b = a if h is None else other[:, c : c + cols].to(dtype)
        out += (a @ b.T).to(ACC)
    return out


def row_blocks(n: int, per_row: int, budget: int) -> int:
    """Rows per block so that a block of ``per_row`` bytes each stays under ``budget``."""
    return max(1, min(n, budget // max(1, per_row)))


def rows_gram(
    rows: RowGrads, n: int, numel: int, itemsize: int, budget: int, device: torch.device
) -> Tensor:
    """Σ over one layer of ⟨g_i, g_j⟩ from per-example gradients made by ``rows`` → [n, n]."""
    blk = row_blocks(n, numel * itemsize, budget)
    k = torch.zeros(n, n, dtype=ACC, device=device)
    starts = list(range(0, n, blk))
    for s in starts:
        gi = rows(s, min(n, s + blk)).reshape(-1, numel)
        k[s : s + blk, s : s + blk] = gram64(gi)
        for t in starts:
            if t <= s:
                continue
            gj = rows(t, min(n, t + blk)).reshape(-1, numel)
            cross = gram64(gi, gj)
            k[s : s + blk, t : t + blk] = cross
            k[t : t + blk, s : s + blk] = cross.T
    return k


def recompute_factor(n: int, numel: int, itemsize: int, budget: int) -> float:
    """How many times `rows_gram` forms each row's gradient: (blocks + 1) / 2."""
    blocks = math.ceil(n / row_blocks(n, numel * itemsize, budget))
    return (blocks + 1) / 2


def ghost_gram(
    u: Tensor | Callable[[int, int], Tensor],
    v: Tensor,
    budget: int,
    same: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """K_ij = Σ_{l,l'} S(u_il, u_jl') ⟨v_il, v_jl'⟩ → [n, n] float64.

    u: [n, L, D] or ``u(start, stop)`` making its rows (e.g. an unfold per block); v: [n, L, C].
    S is the inner product, or ``same(u_I, u_J) -> [|I|·L, |J|·L]`` (embeddings: equal ids).
    Row blocks keep the [|I|·L, |J|·L] position products under ``budget`` bytes.
    """
    n, positions = v.shape[:2]
    dtype = work_dtype(v)
    itemsize = torch.finfo(dtype).bits // 8
    blk = max(1, min(n, math.isqrt(max(1, budget // (itemsize * 2 * positions * positions)))))
    get = u if callable(u) else (lambda s, t: u[s:t])
    if same is None:  # u holds features to multiply (ids for ``same`` stay as they are)
        raw = get
        get = lambda s, t: raw(s, t).to(dtype)  # noqa: E731
    k = torch.zeros(n, n, dtype=ACC, device=v.device)
    starts = list(range(0, n, blk))
    for s in starts:
        ui = get(s, min(n, s + blk))
        vi = v[s : s + blk].to(dtype)
        for t in starts:
            if t < s:
                continue
            uj = ui if t == s else get(t, min(n, t + blk))
            vj = vi if t == s else v[t : t + blk].to(dtype)
            if same is None:
                uu = ui.reshape(-1, ui.shape[-1]) @ uj.reshape(-1, uj.shape[-1]).T
            else:
                uu = same(ui, uj).to(dtype)
            vv = vi.reshape(-1, vi.shape[-1]) @ vj.reshape(-1, vj.shape[-1]).T
            pairs = (uu * vv).reshape(len(ui), positions, len(uj), positions)
            block = pairs.sum((1, 3), dtype=ACC)  # the position pairs add up in float64
            k[s : s + blk, t : t + blk] = block
            if t != s:
                k[t : t + blk, s : s + blk] = block.T
    return k
