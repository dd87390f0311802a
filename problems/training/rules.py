"""The outer rules the trainer, the CLI (``--rule`` choices) and the demo read: `minimax.RULES`.

Public API::

    RULES                                  minimax.RULES: name → rule builder
    training_rules() -> list[str]          the registered rules that apply to adversarial training
    build_rule(name, **options) -> minimax.Rule

To add a rule, register its class in `minimax.RULES` (one line beside the class); ``minimax train
--rule`` picks it up. Rules that need a finite inner problem (``finite_only``, e.g. Group DRO) are
left out of the trainer's choices.
"""

from __future__ import annotations

import minimax
from minimax import RULES

__all__ = ["RULES", "build_rule", "training_rules"]


def training_rules() -> list[str]:
    """Registered rule names for adversarial training over a perturbation set (rules marked
    ``finite_only`` need pure strategies from `minimax.Enumerate` and are left out)."""
    return [n for n in RULES.names() if not getattr(RULES.get(n), "finite_only", False)]


def build_rule(name: str, **options: object) -> minimax.Rule:
    """The `minimax` rule registered as ``name`` (``options`` go to its constructor, e.g.
    ``normalize=True``); an unknown name is a ValueError listing the choices."""
    return RULES.build(name, **options)
