"""The Square attack's windows and update patterns: where a proposal changes δ and how.

Internal to `minimax.inner.square`: `_window_mask` (one random window per example),
`_rectangles` and `_l2_pattern` (the L2 update's centred-square pattern), `_place` (a pattern
written into each example's window).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__: list[str] = []


def _window_mask(h: int, w: int, side: tuple[int, int], n: int, gen: torch.Generator) -> Tensor:
    """[n, 1, h, w] bool: one random sh×sw window per example (positions drawn with ``gen``)."""
    sh, sw = side
    vh = torch.randint(0, h - sh + 1, (n, 1, 1, 1), generator=gen, device=gen.device)
    vw = torch.randint(0, w - sw + 1, (n, 1, 1, 1), generator=gen, device=gen.device)
    rows, cols = _grid(h, w, str(gen.device))
    if max(h, w) <= 256:
        # 0 ≤ i − v < s as one unsigned comparison: i − v ≥ −(h − s), which wraps to
        # 256 − h + s ≥ s
        return ((rows - vh).to(torch.uint8) < sh) & ((cols - vw).to(torch.uint8) < sw)
    return (rows >= vh) & (rows < vh + sh) & (cols >= vw) & (cols < vw + sw)


@functools.lru_cache(maxsize=16)
def _grid(h: int, w: int, device: str) -> tuple[Tensor, Tensor]:
    """Row and column indices [1, 1, h, 1] and [1, 1, 1, w] (made once per size)."""
    rows = torch.arange(h, device=device).reshape(1, 1, h, 1)
    return rows, torch.arange(w, device=device).reshape(1, 1, 1, w)


def _rectangles(a: int, b: int) -> Tensor:
    """[a, b] nested rectangles around the centre, ring k weighted 1/(k+1)², unit norm."""
    out = torch.zeros(a, b, dtype=torch.float64)
    ch, cw = a // 2, b // 2
    for k in range(max(ch, cw) + 1):
        out[max(ch - k, 0) : min(ch + k + 1, a), max(cw - k, 0) : min(cw + k + 1, b)] += (
            1.0 / (k + 1) ** 2
        )
    return out / out.norm().clamp_min(1e-12)


def _l2_pattern(a: int, b: int) -> Tensor:
    """[a, b] the L2 update pattern: rectangles in the top half, their negation in the bottom
    half (zero mean up to parity), unit norm."""
    out = torch.zeros(a, b, dtype=torch.float64)
    if a // 2 > 0:
        out[: a // 2] = _rectangles(a // 2, b)
    out[a // 2 :] = -_rectangles(a - a // 2, b)
    return out / out.norm().clamp_min(1e-12)


def _place(pattern: Tensor, mask: Tensor, transpose: Tensor) -> Tensor:
    """Write ``pattern`` [s, s'] (or its transpose where ``transpose`` [n] is set; square
    patterns only) into each example's window of ``mask`` [n, 1, h, w] → [n, 1, h, w]."""
    n = mask.shape[0]
    rows = mask.any(dim=3).squeeze(1)  # [n, h]
    cols = mask.any(dim=2).squeeze(1)  # [n, w]
    i = (rows.long().cumsum(-1) - 1).clamp(0, pattern.shape[0] - 1)  # row index in the window
    j = (cols.long().cumsum(-1) - 1).clamp(0, pattern.shape[1] - 1)
    plain = pattern[i[:, :, None], j[:, None, :]]
    if pattern.shape[0] == pattern.shape[1]:
        flipped = pattern.T[i[:, :, None], j[:, None, :]]
        plain = torch.where(transpose.reshape(n, 1, 1), flipped, plain)
    return (plain.unsqueeze(1) * mask).to(pattern.dtype)
