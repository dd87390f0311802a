"""What extending minimax takes: the bases of each extension point, the registries that name the
pieces, and the building blocks attacks and rules share.

To add a rule, subclass `Rule` (or `GramRule`: the engine's K and α ↦ d, weights from K) and
register it in `RULES`; an inner solver subclasses `InnerSolver` (returning `Candidates`) and
goes in `INNER_SOLVERS`; an attack is a builder in `ATTACKS`, a suite an entry of `SUITES`, a
threat model a set class in `THREATS`; a min-norm solver is a name in `MINNORM_METHODS`; a set
subclasses `PerturbationSet`, a problem `Problem`. docs/architecture.md says what to touch for
each. The user's API is `minimax` itself; linear algebra on gradients is `minimax.linalg`.

The registries (name → builder; ``names()``, ``build(name, ...)``, ``help``):

- ``RULES``: outer rules (``danskin``/``pgd``, ``maxloss``, ``ddi``, ``ddi-example``,
  ``group-dro``);
- ``INNER_SOLVERS``: inner maximizers by name;
- ``ATTACKS``: attacks ``(eps, steps, restarts, seed) -> InnerSolver``; ``SUITES``: named tuples
  of attacks (``standard``: AutoAttack's);
- ``THREATS``: threat models (``linf``, ``l2``) that `threat_set` builds;
- ``MINNORM_METHODS``: the simplex QP solvers of `minimax.min_norm_weights`.
"""

from minimax.attacks import ATTACKS, SUITES, THREATS, build_attack, model_mode, threat_set
from minimax.engine import PassCounter, VectorizationWarning, engine_of
from minimax.groups import adversarial_batch
from minimax.inner import (
    INNER_SOLVERS,
    APGDTargeted,
    Candidates,
    InnerSolver,
    dlr_loss,
    make_generator,
    margin_loss,
    square_fraction,
    targeted_dlr_loss,
)
from minimax.inner.fab import FABTargeted, fab_targeted
from minimax.linesearch import LineSearchResult
from minimax.minnorm import METHODS as MINNORM_METHODS
from minimax.minnorm import MinNormConvergenceWarning, MinNormResult
from minimax.problem import Problem
from minimax.registry import Registry
from minimax.robustness import robustbench_record
from minimax.rules import RULES, Direction, GramRule, GramVectors, Rule
from minimax.sets import PerturbationSet

__all__ = [
    "ATTACKS",
    "INNER_SOLVERS",
    "MINNORM_METHODS",
    "RULES",
    "SUITES",
    "THREATS",
    "APGDTargeted",
    "Candidates",
    "Direction",
    "FABTargeted",
    "GramRule",
    "GramVectors",
    "InnerSolver",
    "LineSearchResult",
    "MinNormConvergenceWarning",
    "MinNormResult",
    "PassCounter",
    "PerturbationSet",
    "Problem",
    "Registry",
    "Rule",
    "VectorizationWarning",
    "adversarial_batch",
    "build_attack",
    "dlr_loss",
    "engine_of",
    "fab_targeted",
    "make_generator",
    "margin_loss",
    "model_mode",
    "robustbench_record",
    "square_fraction",
    "targeted_dlr_loss",
    "threat_set",
]
