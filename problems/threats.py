"""Threat models of the image instances: `minimax.extend.threat_set` over the pixel range [0, 1].

Public API::

    THREATS                          minimax.extend.THREATS: "linf" → LinfBall, "l2" → L2Ball
    make_perturbation(threat, eps, *, allow_large_eps=False) -> minimax.extend.PerturbationSet
"""

from __future__ import annotations

import minimax

__all__ = ["THREATS", "make_perturbation"]

#: name → ball: the CLI's ``--threat`` choices and `TrainConfig.threat`'s names
THREATS = minimax.extend.THREATS


def make_perturbation(
    threat: str, eps: float, *, allow_large_eps: bool = False
) -> minimax.extend.PerturbationSet:
    """The ε-ball of ``threat`` (a `THREATS` name) with x + δ kept in [0, 1] (pixel range), by
    `minimax.extend.threat_set` (an L∞ ``eps`` over 1 needs ``allow_large_eps``)."""
    return minimax.extend.threat_set(threat, eps, 0.0, 1.0, allow_large_eps=allow_large_eps)
