"""minimax: solvers for nonconvex-nonconcave min-max problems on PyTorch and torch.func.

Declare a problem (`FunctionProblem`, `ModuleProblem`) over a perturbation set (`LinfBall`,
`L2Ball`, `L1Ball`, `Box`), pick an inner solver (`PGD`, `FGSM`, `Grid`, `APGD`) and an outer
rule (`Danskin`, `MaxLoss`, `DDi`), and step any ``torch.optim`` optimizer with
`MinMaxOptimizer`. The min-norm solvers behind DDi (`min_norm_weights`, `min_norm_point`) are
exact and return a KKT certificate. Property-based testing of descent claims lives in
`minimax.testing` (``import minimax.testing``; hypothesis strategies, assertions, a pytest plugin).

Each extension point has a registry (name → builder): `RULES`, `INNER_SOLVERS` and the min-norm
`METHODS`; docs/architecture.md maps the modules and what to touch to add each kind of piece.
"""

from minimax import toys
from minimax.gradients import (
    candidate_gradients,
    combine,
    flat_norm,
    gram,
    inner_products,
    per_example_gradients,
)
from minimax.inner import (
    APGD,
    FGSM,
    INNER_SOLVERS,
    PGD,
    Candidates,
    Grid,
    InnerSolver,
    dlr_loss,
    make_generator,
)
from minimax.minnorm import (
    METHODS,
    MinNormConvergenceWarning,
    MinNormResult,
    kkt_residual,
    min_norm_point,
    min_norm_product_weights,
    min_norm_weights,
)
from minimax.optim import MinMaxOptimizer, StepReport, descent_direction
from minimax.problem import (
    FunctionProblem,
    ModuleProblem,
    PassCounter,
    Problem,
    VectorizationWarning,
)
from minimax.registry import Registry
from minimax.rules import RULES, Danskin, DDi, Direction, GramRule, GramVectors, MaxLoss, Rule
from minimax.sets import Box, L1Ball, L2Ball, LinfBall, PerturbationSet

__version__ = "0.1.0"

__all__ = [
    "APGD",
    "FGSM",
    "INNER_SOLVERS",
    "METHODS",
    "PGD",
    "RULES",
    "Box",
    "Candidates",
    "DDi",
    "Danskin",
    "Direction",
    "FunctionProblem",
    "GramRule",
    "GramVectors",
    "Grid",
    "InnerSolver",
    "L1Ball",
    "L2Ball",
    "LinfBall",
    "MaxLoss",
    "MinMaxOptimizer",
    "MinNormConvergenceWarning",
    "MinNormResult",
    "ModuleProblem",
    "PassCounter",
    "PerturbationSet",
    "Problem",
    "Registry",
    "Rule",
    "StepReport",
    "VectorizationWarning",
    "__version__",
    "candidate_gradients",
    "combine",
    "descent_direction",
    "dlr_loss",
    "flat_norm",
    "gram",
    "inner_products",
    "kkt_residual",
    "make_generator",
    "min_norm_point",
    "min_norm_product_weights",
    "min_norm_weights",
    "per_example_gradients",
    "toys",
]
