"""Threat models: the perturbation set of an image attack, by name (the one builder that training
and evaluation share).

Public API::

    THREATS                          Registry: "linf" → minimax.LinfBall, "l2" → minimax.L2Ball
    make_perturbation(norm, eps) -> minimax.PerturbationSet   (x + δ kept in [0, 1])
"""

from __future__ import annotations

import minimax
from minimax.registry import Registry

__all__ = ["THREATS", "make_perturbation"]

#: name → ``(eps, *, lower, upper) -> PerturbationSet``; the CLI's ``--threat`` choices
THREATS: Registry[minimax.PerturbationSet] = Registry("norm")
THREATS.add("linf", minimax.LinfBall, help="the L∞ ball ‖δ‖∞ ≤ ε")
THREATS.add("l2", minimax.L2Ball, help="the L2 ball ‖δ‖₂ ≤ ε")


def make_perturbation(norm: str, eps: float) -> minimax.PerturbationSet:
    """The ε-ball of ``norm`` (a `THREATS` name) with x + δ kept in [0, 1] (pixel range)."""
    return THREATS.build(norm, eps, lower=0.0, upper=1.0)
