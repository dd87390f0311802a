"""Threat models of the image instances: `minimax.threat_set` over the pixel range [0, 1].

Public API::

    THREATS                          minimax.THREATS: "linf" → LinfBall, "l2" → L2Ball (choices)
    make_perturbation(norm, eps, *, allow_large_eps=False) -> minimax.PerturbationSet
"""

from __future__ import annotations

import minimax

__all__ = ["THREATS", "make_perturbation"]

#: name → ball: the CLI's ``--threat`` choices and `TrainConfig.norm`'s names
THREATS = minimax.THREATS


def make_perturbation(
    norm: str, eps: float, *, allow_large_eps: bool = False
) -> minimax.PerturbationSet:
    """The ε-ball of ``norm`` (a `THREATS` name) with x + δ kept in [0, 1] (pixel range), by
    `minimax.threat_set` (an L∞ ``eps`` over 1 needs ``allow_large_eps``)."""
    return minimax.threat_set(norm, eps, 0.0, 1.0, allow_large_eps=allow_large_eps)
