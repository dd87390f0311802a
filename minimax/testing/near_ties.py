"""Continuous problems whose maximizers tie only up to rounding (a few ulps apart, not bit-equal).

- `circumcenter_pieces`: three quadratics ½‖θ − p_i‖² at the circumcenter of the triangle
  p_1 p_2 p_3, as a max over δ ∈ [0, 2] (`max_of_pieces` with ``pin=False``): the three pieces
  agree up to the rounding of the circumcenter. At an acute triangle θ is stationary (0 lies in
  the hull of the gradients θ − p_i), so no rule may certify descent there.
- `near_tie_counterexample`: the paper's counterexample at x = (x₁, x₂) with x₂ a few ulps
  from 0, where its two maximizers y = 0 and y = 1 differ by 4x₂.

`near_tie_problems` draws both, with hypothesis. The oracle's active set (`KnownProblem`'s
maximizers) keeps every piece within 1e-9 relative of the max, as for the other families.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from minimax.testing.finite import shift_ulps
from minimax.testing.problems import KnownProblem, counterexample, max_of_pieces
from minimax.testing.strategies import numbers

__all__ = [
    "circumcenter",
    "circumcenter_pieces",
    "near_tie_counterexample",
    "near_tie_problems",
    "triangles",
]

Point = tuple[float, float]


def circumcenter(vertices: Sequence[Point]) -> Point:
    """The circumcenter of a triangle [3][2], in float64 (rounded: the three distances to it
    agree only up to a few ulps)."""
    (ax, ay), (bx, by), (cx, cy) = vertices
    d = 2.0 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    if d == 0.0:
        raise ValueError(f"vertices {list(vertices)} are collinear: no circumcenter")
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    return (ux, uy)


def circumcenter_pieces(vertices: Sequence[Point]) -> KnownProblem:
    """max_i ½‖θ − p_i‖² over the triangle's vertices p_i, at θ = its circumcenter (near ties)."""
    theta = circumcenter(vertices)
    return max_of_pieces(
        a=((1.0, 1.0, 1.0),),
        c=(tuple(tuple(map(float, v)) for v in vertices),),
        gaps=((0.0, 0.0, 0.0),),
        theta=theta,
        pin=False,
    )


def near_tie_counterexample(x1: float = 1.0, ulps: int = 3) -> KnownProblem:
    """The counterexample at x = (x₁, x₂), x₂ = ``ulps`` ulps away from 0 (a subnormal): its two
    maximizers differ by 4x₂, far below any step."""
    return counterexample(x=(x1, shift_ulps(0.0, ulps)))


def _area(t: Sequence[Point]) -> float:
    (ax, ay), (bx, by), (cx, cy) = t
    return abs((bx - ax) * (cy - ay) - (cx - ax) * (by - ay)) / 2


def triangles(scale: float = 3.0) -> st.SearchStrategy[tuple[Point, Point, Point]]:
    """Triangles with vertices in [−scale, scale]² (3 decimals) and area ≥ scale²/100."""
    coord = numbers(-scale, scale, 3)
    point = st.tuples(coord, coord)
    return st.tuples(point, point, point).filter(lambda t: _area(t) >= scale * scale / 100)


def near_tie_problems() -> st.SearchStrategy[KnownProblem]:
    """`circumcenter_pieces` over drawn triangles, or `near_tie_counterexample`."""
    return st.one_of(
        triangles().map(circumcenter_pieces),
        st.builds(
            near_tie_counterexample,
            numbers(-2.0, 2.0),
            st.integers(-4, 4).filter(bool),
        ),
    )
