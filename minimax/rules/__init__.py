"""Outer descent-direction rules: candidates → a `Direction` d (the optimizer descends along −d).

Every rule sees the engine (`minimax.engine.Engine`, or a problem: then its default engine), θ,
the batch and the inner solver's `Candidates`; it asks the engine for gradients or for K and
α ↦ d, weighs and certifies, and knows nothing of how the candidates were found or how g is
evaluated.

- `Danskin`: the gradient at the best candidate (PGD adversarial training's rule).
- `MaxLoss`: the gradient at each example's worst restart (the equal-compute baseline).
- `DDi`: the minimum-norm element of the hull of the candidate gradients (Danskin's Descent
  Direction), batch-level or per example.

The interface is `Rule` and `Direction` (`minimax.rules.base`); `GramRule` (`minimax.rules.gram`)
is the template of the rules over the Gram matrix of candidate gradients.

Public API::

    Direction, Rule                  rules/base.py
    Danskin, MaxLoss                 rules/single.py
    GramRule, GramVectors            rules/gram.py
    DDi                              rules/ddi.py
    RULES                            the registry: danskin (alias pgd), maxloss, ddi, ddi-example
"""

from __future__ import annotations

from minimax.registry import Registry
from minimax.rules.base import Direction, Rule
from minimax.rules.ddi import DDi, ddi_per_example
from minimax.rules.gram import GramRule, GramVectors
from minimax.rules.single import Danskin, MaxLoss

__all__ = ["RULES", "DDi", "Danskin", "Direction", "GramRule", "GramVectors", "MaxLoss", "Rule"]

RULES: Registry[Rule] = Registry("rule")
RULES.add("danskin", Danskin, aliases=("pgd",))
RULES.add("maxloss", MaxLoss)
RULES.add("ddi", DDi)
RULES.add("ddi-example", ddi_per_example)
