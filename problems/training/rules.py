"""The outer rules by name: the one list the config, the CLI (``--rule`` choices) and the demo
read.

Public API::

    RULES                                  Registry: name → rule builder
    build_rule(name, **options) -> minimax.Rule

To add a rule, register its class (or a builder) below; ``minimax train --rule`` picks it up.
"""

from __future__ import annotations

import functools

import minimax
from minimax.registry import Registry

__all__ = ["RULES", "build_rule"]

# replaced by minimax.RULES at merge
RULES: Registry[minimax.Rule] = Registry("rule")
RULES.add("danskin", minimax.Danskin, help="PGD-AT: the gradient at the best restart")
RULES.add("maxloss", minimax.MaxLoss, help="each example's worst restart")
RULES.add("ddi", minimax.DDi, help="DDi: the min-norm hull of the m batch gradients")
RULES.add(
    "ddi-example",
    functools.partial(minimax.DDi, per_example=True),
    help="per-example DDi: the exact Danskin set of the batch loss",
)


def build_rule(name: str, **options: object) -> minimax.Rule:
    """The `minimax` rule registered as ``name`` (``options`` go to its constructor, e.g.
    ``normalize=True``); an unknown name is a ValueError listing the choices."""
    return RULES.build(name, **options)
