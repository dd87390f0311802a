"""minimax: solvers for nonconvex-nonconcave min-max problems on PyTorch and torch.func.

Declare a problem (`FunctionProblem`, `ModuleProblem`) over a perturbation set (`LinfBall`,
`L2Ball`, `L1Ball`, `Box`), pick an inner solver (`PGD`, `FGSM`, `Grid`, `APGD`) and an outer rule
(`Danskin`, `MaxLoss`, `DDi`), and step any ``torch.optim`` optimizer with `MinMaxOptimizer` (or
fill ``.grad`` in your own loop with `backward`). `Engine` (default: `engine_of(problem)`) evaluates
and differentiates g and holds the execution choices. `attack` and `evaluate` run the named attacks
(`ATTACKS`: PGD, APGD-CE/-DLR, APGD-T, Square) and suites (`SUITES`) on any ``nn.Module``
classifier. The min-norm solvers behind DDi (`min_norm_weights`, `min_norm_point`) are exact and
return a KKT certificate. Property-based testing of descent claims lives in `minimax.testing`
(``import minimax.testing``; hypothesis strategies, assertions, a pytest plugin).

Each extension point has a registry (name → builder): `RULES`, `INNER_SOLVERS` and the min-norm
`METHODS`; docs/architecture.md maps the modules and what to touch to add each kind of piece.
"""

from minimax import distributed, nonfinite, toys
from minimax.attacks import (
    ATTACKS,
    SUITES,
    THREATS,
    attack,
    build_attack,
    model_mode,
    threat_set,
)
from minimax.engine import Engine, PassCounter, VectorizationWarning, engine_of
from minimax.engine.gradients import (
    candidate_gradients,
    combine,
    flat_norm,
    gram,
    inner_products,
    per_example_gradients,
)
from minimax.engine.gramian import per_example_gram, weighted_gradient
from minimax.grad import backward
from minimax.group_dro import GroupDRO
from minimax.groups import WorstGroupProblem, adversarial_batch
from minimax.inner import (
    APGD,
    FGSM,
    INNER_SOLVERS,
    PGD,
    APGDTargeted,
    Candidates,
    Enumerate,
    Grid,
    InnerSolver,
    Square,
    dlr_loss,
    make_generator,
    margin_loss,
    square_fraction,
    targeted_dlr_loss,
)
from minimax.linesearch import Armijo, LineSearchResult
from minimax.minnorm import (
    METHODS,
    MinNormConvergenceWarning,
    MinNormResult,
    kkt_residual,
    min_norm_point,
    min_norm_product_weights,
    min_norm_weights,
)
from minimax.nonfinite import NonFiniteError
from minimax.optim import MinMaxOptimizer, StepReport, descent_direction
from minimax.problem import FunctionProblem, ModuleProblem, Problem
from minimax.registry import Registry
from minimax.robustness import Evaluation, evaluate, robustbench_record, write_robustbench
from minimax.rules import RULES, Danskin, DDi, Direction, GramRule, GramVectors, MaxLoss, Rule
from minimax.sets import Box, L1Ball, L2Ball, LinfBall, PerturbationSet, Simplex
from minimax.tolerance import ShrinkingTolerance

__version__ = "0.1.0"

__all__ = [
    "APGD",
    "ATTACKS",
    "FGSM",
    "INNER_SOLVERS",
    "METHODS",
    "PGD",
    "RULES",
    "SUITES",
    "THREATS",
    "APGDTargeted",
    "Armijo",
    "Box",
    "Candidates",
    "DDi",
    "Danskin",
    "Direction",
    "Engine",
    "Enumerate",
    "Evaluation",
    "FunctionProblem",
    "GramRule",
    "GramVectors",
    "Grid",
    "GroupDRO",
    "InnerSolver",
    "L1Ball",
    "L2Ball",
    "LineSearchResult",
    "LinfBall",
    "MaxLoss",
    "MinMaxOptimizer",
    "MinNormConvergenceWarning",
    "MinNormResult",
    "ModuleProblem",
    "NonFiniteError",
    "PassCounter",
    "PerturbationSet",
    "Problem",
    "Registry",
    "Rule",
    "ShrinkingTolerance",
    "Simplex",
    "Square",
    "StepReport",
    "VectorizationWarning",
    "WorstGroupProblem",
    "__version__",
    "adversarial_batch",
    "attack",
    "backward",
    "build_attack",
    "candidate_gradients",
    "combine",
    "descent_direction",
    "distributed",
    "dlr_loss",
    "engine_of",
    "evaluate",
    "flat_norm",
    "gram",
    "inner_products",
    "kkt_residual",
    "make_generator",
    "margin_loss",
    "min_norm_point",
    "min_norm_product_weights",
    "min_norm_weights",
    "model_mode",
    "nonfinite",
    "per_example_gradients",
    "per_example_gram",
    "robustbench_record",
    "square_fraction",
    "targeted_dlr_loss",
    "threat_set",
    "toys",
    "weighted_gradient",
    "write_robustbench",
]
