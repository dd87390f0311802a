"""Perturbation sets S for the inner variable δ.

Layout convention (every method follows it)
-------------------------------------------
``delta`` has shape ``[*lead, B, *event]``: ``B`` examples, each example's δ made of the trailing
``event_ndim`` dims, and optional extra leading dims ``lead`` (e.g. ``m`` restarts stacked as
``[m, B, 3, 32, 32]`` with ``event_ndim=3``). ``event_ndim`` defaults to ``delta.ndim - 1``
(one leading example dim, no ``lead``). Norms are taken over the event dims of each example, so
per-example results have shape ``[*lead, B]``.

``eps`` (and a step size) is a float or a tensor of shape ``[B]`` (one value per example).

Norm balls may also bound the perturbed input: ``lower ≤ x + δ ≤ upper`` elementwise (e.g.
``[0, 1]`` for images). Methods that need it then take the clean input ``x`` of shape
``[B, *event]``, broadcast against ``lead``; the bounds assume a valid ``x`` with
``lower ≤ x ≤ upper``.

Exactness of :meth:`PerturbationSet.project`
--------------------------------------------
* ``LinfBall`` (with or without bounds) and ``Box``: exact Euclidean projection (an elementwise
  clamp to the intersection interval).
* ``L2Ball``, ``L1Ball`` without bounds: exact Euclidean projection (L1: sort-based,
  Duchi et al. 2008).
* ``L2Ball``, ``L1Ball`` with bounds: the composition "project onto the ball, then clamp
  ``x + δ`` into the bounds". For ``x`` inside the bounds the clamp only shrinks each ``|δ_i|``,
  so the result is feasible (in the ball and in the bounds), but it is not the exact projection
  onto the intersection.

Modules: `minimax.sets.base` (the interface and shared checks), `minimax.sets.lp` (norm balls),
`minimax.sets.box` (boxes), `minimax.sets.simplex` (the probability simplex), `minimax.sets.steps`
(PGD's projected ascent step, built once per search).
"""

from minimax.sets.base import PerturbationSet
from minimax.sets.box import Box
from minimax.sets.lp import L1Ball, L2Ball, LinfBall
from minimax.sets.simplex import Simplex

__all__ = ["Box", "L1Ball", "L2Ball", "LinfBall", "PerturbationSet", "Simplex"]
