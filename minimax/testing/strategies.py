"""Hypothesis strategies: known min-max problems, tied points, and hard Gram matrices.

Every number is drawn from hypothesis (rounded to a few decimals, so shrunk examples read well);
sizes shrink towards the smallest problem (2 pieces, 1 dimension, 1 example). Where torch
randomness is used (the Gram families), its seed is itself a drawn integer, so a failure replays
from hypothesis' printed blob.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import assume
from hypothesis import strategies as st
from torch import Tensor

from minimax.testing.problems import (
    DTYPE,
    KnownProblem,
    linear_model,
    max_of_pieces,
    multilinear_box,
    tanh_network,
)

__all__ = [
    "FAMILIES",
    "GRAM_FAMILIES",
    "GramCase",
    "gram_case",
    "gram_matrices",
    "known_problems",
    "linear_problems",
    "multilinear_problems",
    "network_problems",
    "numbers",
    "pieces_problems",
    "tied_problems",
]

FAMILIES: tuple[str, ...] = ("max_of_pieces", "multilinear_box", "linear_model", "tanh_network")
GRAM_FAMILIES: tuple[str, ...] = ("gaussian", "correlated", "rank_deficient", "origin_in_hull")


@functools.lru_cache(maxsize=256)
def numbers(lo: float, hi: float, places: int = 2) -> st.SearchStrategy[float]:
    """Floats in [lo, hi] rounded to ``places`` decimals (shrink towards 0 or lo)."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(
        lambda v: min(hi, max(lo, round(v, places))) + 0.0
    )


@functools.lru_cache(maxsize=64)
def _nonzero(lo: float, hi: float) -> st.SearchStrategy[float]:
    """± a magnitude in [lo, hi] (positive first when shrinking)."""
    return st.tuples(numbers(lo, hi), st.booleans()).map(lambda t: -t[0] if t[1] else t[0])


def _check_tied(kp: KnownProblem, tied: bool | None, max_combinations: int) -> KnownProblem:
    maxs = kp.maximizers()
    assume(math.prod(len(m) for m in maxs) <= max_combinations)
    if tied is True:
        assume(len(maxs[0]) >= 2)
    elif tied is False:
        assume(all(len(m) == 1 for m in maxs))
    return kp


@st.composite
def pieces_problems(
    draw: st.DrawFn,
    *,
    max_pieces: int = 4,
    max_dim: int = 3,
    max_batch: int = 2,
    tied: bool | None = None,
    min_gap: float = 0.25,
) -> KnownProblem:
    """`max_of_pieces` problems: k ∈ [2, max_pieces] quadratic pieces in θ ∈ R^n, B examples.

    Per example, the first t_b pieces tie at the drawn θ (t_0 ≥ 2 when ``tied=True``, all t_b = 1
    when ``tied=False``); the others lie at least ``min_gap`` below.
    """
    k = draw(st.integers(2, max(2, max_pieces)), label="k")
    n = draw(st.integers(1, max_dim), label="dim")
    b = draw(st.integers(1, max_batch), label="B")
    theta = [draw(numbers(-2, 2)) for _ in range(n)]
    a = [[draw(numbers(0.5, 2)) for _ in range(k)] for _ in range(b)]
    c = [[[draw(numbers(-2, 2)) for _ in range(n)] for _ in range(k)] for _ in range(b)]
    gaps = []
    for j in range(b):
        if tied is False:
            t = 1
        else:
            t = draw(st.integers(2 if (tied and j == 0) else 1, k))
        gaps.append([0.0] * t + [draw(numbers(min_gap, 2)) for _ in range(k - t)])
    return max_of_pieces(a, c, gaps, theta)


@st.composite
def multilinear_problems(
    draw: st.DrawFn,
    *,
    max_vars: int = 3,
    max_dim: int = 3,
    max_batch: int = 2,
    tied: bool | None = None,
    min_gap: float = 0.05,
    max_combinations: int = 64,
) -> KnownProblem:
    """`multilinear_box` problems: δ ∈ [l, u]^k (k ≤ max_vars ≤ 3), θ ∈ R^n, linear coefficients.

    Ties are forced with ``flat`` (g independent of one δ_j at θ); problems whose best
    non-maximal vertex is within ``min_gap`` of the max are rejected.
    """
    k = draw(st.integers(1, min(3, max_vars)), label="k")
    n = draw(st.integers(1, max_dim), label="dim")
    b = draw(st.integers(1, max_batch), label="B")
    lower = draw(numbers(-2, 0, 1))
    upper = lower + draw(numbers(0.5, 2, 1))
    theta = [draw(numbers(-1, 1)) for _ in range(n)]
    w = [[[draw(numbers(-1, 1)) for _ in range(n)] for _ in range(2**k)] for _ in range(b)]
    v = [[draw(numbers(-1, 1)) for _ in range(2**k)] for _ in range(b)]
    if tied is None:
        flat = draw(st.none() | st.integers(0, k - 1))
    elif tied:
        flat = draw(st.integers(0, k - 1))
    else:
        flat = None
    kp = multilinear_box(w, v, lower, upper, theta, flat=flat)
    assume(kp.info["gap"] >= min_gap)
    return _check_tied(kp, tied, max_combinations)


@st.composite
def linear_problems(
    draw: st.DrawFn,
    *,
    norms: Sequence[str] = ("inf", "2", "1"),
    losses: Sequence[str] = ("linear", "logistic"),
    max_dim: int = 4,
    max_batch: int = 3,
    tied: bool | None = None,
    min_gap: float = 0.05,
    max_combinations: int = 64,
) -> KnownProblem:
    """`linear_model` problems under an L∞, L2 or L1 ball.

    Ties: L∞ with a zero weight (both signs of that δ_i maximize), L1 with two weights of equal,
    maximal magnitude. L2 never ties (w ≠ 0 is enforced), so ``tied=True`` draws L∞ or L1.
    """
    allowed = [q for q in norms if q != "2"] if tied else list(norms)
    if not allowed:
        raise ValueError("tied linear problems need the L∞ or L1 norm")
    norm = draw(st.sampled_from(allowed), label="norm")
    loss = draw(st.sampled_from(list(losses)), label="loss")
    lo_n = 2 if (tied and norm == "1") else 1
    n = draw(st.integers(lo_n, max(max_dim, lo_n)), label="dim")
    b = draw(st.integers(1, max_batch), label="B")
    w = [draw(numbers(-2, 2)) for _ in range(n)]
    x = [[draw(numbers(-2, 2)) for _ in range(n)] for _ in range(b)]
    y = [draw(st.sampled_from((1.0, -1.0))) for _ in range(b)]
    bias = draw(numbers(-1, 1))
    eps = draw(numbers(0.1, 1))
    force = tied if tied is not None else draw(st.booleans())
    if force and norm == "inf":
        w[draw(st.integers(0, n - 1))] = 0.0
    elif force and norm == "1" and n >= 2:
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(0, n - 2))
        j = j + 1 if j >= i else j
        top = max(abs(t) for t in w) or 1.0
        w[i], w[j] = top, draw(st.sampled_from((top, -top)))
    if norm == "2":
        assume(any(t != 0 for t in w))
    kp = linear_model(w, bias, x, y, eps, norm=norm, loss=loss)  # type: ignore[arg-type]
    assume(kp.info["gap"] >= min_gap)
    return _check_tied(kp, tied, max_combinations)


@st.composite
def network_problems(
    draw: st.DrawFn,
    *,
    max_hidden: int = 4,
    max_input: int = 2,
    max_batch: int = 2,
    tied: bool | None = None,
    min_gap: float = 0.05,
    max_combinations: int = 64,
) -> KnownProblem:
    """`tanh_network` problems: H ≤ max_hidden tanh units, δ ∈ [−r, r]^d with d ≤ max_input ≤ 2.

    ``tied=True`` (or a drawn choice when None) pairs the units as (W_h, c_h, v_h), (−W_h, c_h, v_h)
    at x = 0, B = 1: f is even and its maximizers come in ± pairs. H ≥ d (else f varies along
    one direction only and its maxima form segments); problems whose max is a plateau, or whose
    best non-maximal local max is within ``min_gap`` of the max, are rejected.
    """
    d = draw(st.integers(1, min(2, max_input)), label="d")
    symmetric = tied if tied is not None else draw(st.booleans())
    radius = draw(numbers(0.25, 1))
    if symmetric:
        pairs = draw(st.integers(d, max(d, max_hidden // 2)), label="pairs")
        rows = [[draw(_nonzero(0.25, 2)) for _ in range(d)] for _ in range(pairs)]
        cs = [draw(_nonzero(0.1, 1)) for _ in range(pairs)]
        vs = [draw(_nonzero(0.25, 2)) for _ in range(pairs)]
        W = rows + [[-t for t in r] for r in rows]
        c, v = cs + cs, vs + vs
        x, y = [[0.0] * d], [1.0]
    else:
        h = draw(st.integers(d, max(d, max_hidden)), label="H")
        b = draw(st.integers(1, max_batch), label="B")
        W = [[draw(_nonzero(0.25, 2)) for _ in range(d)] for _ in range(h)]
        c = [draw(numbers(-1, 1)) for _ in range(h)]
        v = [draw(_nonzero(0.25, 2)) for _ in range(h)]
        x = [[draw(numbers(-1, 1)) for _ in range(d)] for _ in range(b)]
        y = [draw(st.sampled_from((1.0, -1.0))) for _ in range(b)]
    b0 = draw(numbers(-1, 1))
    kp = tanh_network(W, c, v, b0, x, y, radius)
    assume(kp.info["gap"] >= min_gap)
    return _check_tied(kp, tied, max_combinations)


def known_problems(
    *,
    families: Sequence[str] = FAMILIES,
    tied: bool | None = None,
    max_batch: int = 2,
    max_dim: int = 3,
) -> st.SearchStrategy[KnownProblem]:
    """A `KnownProblem` from one of ``families`` (shrinks towards the first family).

    ``tied=True``: example 0 has ≥ 2 maximizers at the drawn θ; ``False``: every maximizer is
    unique; ``None``: either. ``max_batch`` bounds B, ``max_dim`` the size of θ (or of δ).
    """
    builders: dict[str, st.SearchStrategy[KnownProblem]] = {
        "max_of_pieces": pieces_problems(max_dim=max_dim, max_batch=max_batch, tied=tied),
        "multilinear_box": multilinear_problems(max_dim=max_dim, max_batch=max_batch, tied=tied),
        "linear_model": linear_problems(max_dim=max_dim, max_batch=max_batch, tied=tied),
        "tanh_network": network_problems(max_batch=max_batch, tied=tied),
    }
    unknown = [f for f in families if f not in builders]
    if unknown or not families:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    return st.one_of([builders[f] for f in families])


def tied_problems(**kwargs: Any) -> st.SearchStrategy[KnownProblem]:
    """`known_problems` at parameters where ≥ 2 maximizers tie (example 0): ``.params`` is θ."""
    return known_problems(tied=True, **kwargs)


# ------------------------------------------------------------------------------------------------
# Gram matrices of the min-norm problem
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class GramCase:
    """A min-norm test case: vectors [m, n] (float64) and K = scale · V Vᵀ.

    family: how the vectors were made (see `gram_case`); scale: the Gram matrix's scale factor.
    """

    family: str
    vectors: Tensor
    scale: float
    seed: int

    @property
    def gram(self) -> Tensor:
        """K = scale · V Vᵀ, [m, m] float64."""
        return self.scale * (self.vectors @ self.vectors.T)

    @property
    def m(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def n(self) -> int:
        return int(self.vectors.shape[1])

    def __repr__(self) -> str:
        return (
            f"gram_case({self.family!r}, m={self.m}, n={self.n}, seed={self.seed}, "
            f"scale={self.scale:g})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints the rebuilding call, not the dataclass fields."""
        printer.text(repr(self))


def gram_case(family: str, m: int, n: int, seed: int = 0, scale: float = 1.0) -> GramCase:
    """Build a `GramCase` deterministically (a torch.Generator seeded with ``seed``).

    ``"gaussian"``: N(0, 1) entries; ``"correlated"``: u + 0.14 z_i (pairwise cosine ≈ 0.99);
    ``"rank_deficient"``: gaussian with n < m; ``"origin_in_hull"``: ± pairs (v_i, −v_i), so the
    min-norm point is 0 (an odd m adds one gaussian vector).
    """
    if family not in GRAM_FAMILIES:
        raise ValueError(f"unknown Gram family {family!r}; choose from {', '.join(GRAM_FAMILIES)}")
    if m < 1 or n < 1:
        raise ValueError("m and n must be ≥ 1")
    g = torch.Generator().manual_seed(int(seed))
    if family == "correlated":
        u = torch.randn(n, generator=g, dtype=DTYPE)
        u = u / u.norm().clamp_min(1e-300)
        vectors = u + 0.14 * torch.randn(m, n, generator=g, dtype=DTYPE) / math.sqrt(n)
    elif family == "origin_in_hull":
        if m < 2:
            raise ValueError("origin_in_hull needs m ≥ 2")
        half = torch.randn(m // 2, n, generator=g, dtype=DTYPE)
        vectors = torch.cat([half, -half, torch.randn(m % 2, n, generator=g, dtype=DTYPE)])
    else:
        if family == "rank_deficient" and n >= m:
            raise ValueError("rank_deficient needs n < m")
        vectors = torch.randn(m, n, generator=g, dtype=DTYPE)
    return GramCase(family, vectors, float(scale), int(seed))


@st.composite
def gram_matrices(
    draw: st.DrawFn,
    *,
    max_m: int = 8,
    max_n: int = 8,
    families: Sequence[str] = GRAM_FAMILIES,
    min_exponent: int = -12,
    max_exponent: int = 12,
) -> GramCase:
    """`GramCase`s from the hard families of the min-norm problem, m ≤ max_m vectors of size
    n ≤ max_n, scaled by 10^e with e ∈ [min_exponent, max_exponent] (shrinks to e = 0).

    The vectors come from torch with a drawn seed (reproducible, replayable); ``.gram`` is K.
    """
    family = draw(st.sampled_from(list(families)), label="family")
    lo_m = 2 if family in ("rank_deficient", "origin_in_hull") else 1
    m = draw(st.integers(lo_m, max(lo_m, max_m)), label="m")
    if family == "rank_deficient":
        n = draw(st.integers(1, min(max_n, m - 1)), label="n")
    else:
        n = draw(st.integers(1, max_n), label="n")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    lo_e, hi_e = min(min_exponent, 0), max(max_exponent, 0)
    e = draw(st.integers(lo_e, hi_e), label="exponent")
    return gram_case(family, m, n, seed, 10.0**e)
