"""Min-max problems whose robust loss and maximizer sets are known exactly.

A `KnownProblem` bundles a minimax `Problem`, a batch, a point θ (``params``), and exact oracles:
``robust_loss(params)`` (R(θ) = mean_b max_δ g(θ, δ; b), float64) and ``maximizers(params)`` (per
example, a finite set of maximizers whose θ-gradients span the Danskin set by their convex hull).

Each family is built by a plain function whose arguments are the numbers that define it; the
problem's ``repr`` is that call, so a shrunk hypothesis example can be pasted into a regression
test as is:

- `counterexample` and `bilinear`: the two toy problems of the DDi paper;
- `max_of_pieces`: a max of k quadratic pieces, with chosen pieces tied at θ;
- `multilinear_box`: g multilinear in δ on a box (maximized at vertices);
- `linear_model`: a linear classifier with a linear or logistic loss under an L∞/L2/L1 ball
  (closed form through the dual norm);
- `tanh_network`: a one-hidden-layer tanh network (an ``nn.Module``) with a 1- or 2-dimensional δ,
  maximized by grid enumeration and local refinement.

All families compute in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minimax.testing.problems.base import DTYPE, fmt, fmt_params
from minimax.testing.problems.known import (
    DanskinSet,
    ExactInner,
    KnownProblem,
    danskin_set,
)
from minimax.testing.problems.linear import linear_model
from minimax.testing.problems.multilinear import multilinear_box
from minimax.testing.problems.network import tanh_network
from minimax.testing.problems.paper import bilinear, counterexample, max_of_pieces

__all__ = [
    "DTYPE",
    "PROBLEMS",
    "DanskinSet",
    "ExactInner",
    "KnownProblem",
    "bilinear",
    "counterexample",
    "danskin_set",
    "fmt",
    "fmt_params",
    "linear_model",
    "make_problem",
    "max_of_pieces",
    "multilinear_box",
    "tanh_network",
]

PROBLEMS: dict[str, Callable[..., KnownProblem]] = {
    "counterexample": counterexample,
    "bilinear": bilinear,
    "max_of_pieces": max_of_pieces,
    "multilinear_box": multilinear_box,
    "linear_model": linear_model,
    "tanh_network": tanh_network,
}


def make_problem(name: str, **kwargs: Any) -> KnownProblem:
    """Build a known problem by family name (a key of `PROBLEMS`) with the family's arguments."""
    try:
        builder = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose one of {', '.join(PROBLEMS)}") from None
    return builder(**kwargs)
