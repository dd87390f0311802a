"""The outer rules the trainer, the CLI (``--rule`` choices) and the demo read:
`minimax.extend.RULES`.

Public API::

    RULES                                  minimax.extend.RULES: name → rule builder
    training_rules(aliases=False) -> list[str]   the registered rules that apply to adversarial
                                           training (with their aliases: the CLI's choices)
    build_rule(name, **options) -> minimax.extend.Rule

To add a rule, register its class in `minimax.extend.RULES` (one line beside the class);
``minimax train --rule`` picks it up. Rules that need a finite inner problem (``finite_only``,
e.g. Group DRO) are left out of the trainer's choices.
"""

from __future__ import annotations

import minimax
from minimax.extend import RULES

__all__ = ["RULES", "build_rule", "training_rules"]


def training_rules(aliases: bool = False) -> list[str]:
    """Registered rule names for adversarial training over a perturbation set (rules marked
    ``finite_only`` need pure strategies from `minimax.Enumerate` and are left out); with
    ``aliases``, their aliases follow (e.g. ``pgd`` for ``danskin``)."""
    names = RULES.choices() if aliases else RULES.names()
    return [n for n in names if not getattr(RULES.get(n), "finite_only", False)]


def build_rule(name: str, **options: object) -> minimax.extend.Rule:
    """The `minimax` rule registered as ``name`` (``options`` go to its constructor, e.g.
    ``normalize=True``); an unknown name is a ValueError listing the choices."""
    return RULES.build(name, **options)
