"""minimax: solvers for nonconvex-nonconcave min-max problems on PyTorch and torch.func.

Declare a problem (`FunctionProblem`, `ModuleProblem`) over a perturbation set (`LinfBall`,
`L2Ball`, `L1Ball`, `Box`), pick an inner solver (`PGD`, `FGSM`, `Grid`, `APGD`) and an outer
rule (`Danskin`, `MaxLoss`, `DDi`), and step any ``torch.optim`` optimizer with
`MinMaxOptimizer`. The min-norm solvers behind DDi (`min_norm_weights`, `min_norm_point`) are
exact and return a KKT certificate. Property-based testing of descent claims lives in
`minimax.testing` (``import minimax.testing``; hypothesis strategies, assertions, a pytest plugin).
"""

from minimax.gradients import candidate_gradients, combine, gram, per_example_gradients
from minimax.gramian import per_example_gram, weighted_gradient
from minimax.inner import APGD, FGSM, PGD, Candidates, Grid, InnerSolver, dlr_loss
from minimax.minnorm import (
    MinNormConvergenceWarning,
    MinNormResult,
    kkt_residual,
    min_norm_point,
    min_norm_product_weights,
    min_norm_weights,
)
from minimax.optim import MinMaxOptimizer, StepReport, descent_direction
from minimax.problem import FunctionProblem, ModuleProblem, PassCounter, Problem
from minimax.rules import Danskin, DDi, Direction, MaxLoss, Rule
from minimax.sets import Box, L1Ball, L2Ball, LinfBall, PerturbationSet

__version__ = "0.1.0"

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "Box",
    "Candidates",
    "DDi",
    "Danskin",
    "Direction",
    "FunctionProblem",
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
    "Rule",
    "StepReport",
    "__version__",
    "candidate_gradients",
    "combine",
    "descent_direction",
    "dlr_loss",
    "gram",
    "kkt_residual",
    "min_norm_point",
    "min_norm_product_weights",
    "min_norm_weights",
    "per_example_gradients",
    "per_example_gram",
    "weighted_gradient",
]
