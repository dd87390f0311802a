"""minimax: solvers for nonconvex-nonconcave min-max problems on PyTorch and torch.func.

Declare a problem (`FunctionProblem`, `ModuleProblem`, `WorstGroupProblem`) over a perturbation
set (`LinfBall`, `L2Ball`, `L1Ball`, `Box`, `Simplex`), pick an inner solver (`PGD`, `FGSM`,
`APGD`, `Square`, `Grid`, `Enumerate`) and an outer rule (`Danskin`, `MaxLoss`, `DDi`,
`GroupDRO`), and step any ``torch.optim`` optimizer with `MinMaxOptimizer` (or fill ``.grad`` in
your own loop with `backward`). An `Engine` evaluates and differentiates g and holds the execution
choices. `attack` and `evaluate` run the named attacks and suites (AutoAttack's standard suite
included) on any ``nn.Module`` classifier. The min-norm solvers behind DDi (`min_norm_weights`,
`min_norm_point`) are exact and return a KKT certificate.

Beyond this namespace: `minimax.extend` (bases and registries of every extension point),
`minimax.linalg` (gradients, Gram matrices, norms), `minimax.testing` (hypothesis strategies and
assertions for descent claims, a pytest plugin; ``import minimax.testing``), `minimax.distributed`
(data parallelism). docs/architecture.md maps the modules.
"""

from minimax import distributed, extend, linalg, nonfinite, toys  # noqa: F401  (submodules)
from minimax.attacks import attack
from minimax.engine import Engine
from minimax.grad import backward
from minimax.group_dro import GroupDRO
from minimax.groups import WorstGroupProblem
from minimax.inner import APGD, FGSM, PGD, Enumerate, Grid, Square
from minimax.linesearch import Armijo
from minimax.minnorm import min_norm_point, min_norm_weights
from minimax.nonfinite import NonFiniteError
from minimax.optim import MinMaxOptimizer, descent_direction
from minimax.problem import FunctionProblem, ModuleProblem
from minimax.robustness import Evaluation, evaluate, write_robustbench
from minimax.rules import Danskin, DDi, MaxLoss
from minimax.sets import Box, L1Ball, L2Ball, LinfBall, Simplex
from minimax.step_report import StepReport
from minimax.tolerance import ShrinkingTolerance

__version__ = "0.1.0"

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "Armijo",
    "Box",
    "DDi",
    "Danskin",
    "Engine",
    "Enumerate",
    "Evaluation",
    "FunctionProblem",
    "Grid",
    "GroupDRO",
    "L1Ball",
    "L2Ball",
    "LinfBall",
    "MaxLoss",
    "MinMaxOptimizer",
    "ModuleProblem",
    "NonFiniteError",
    "ShrinkingTolerance",
    "Simplex",
    "Square",
    "StepReport",
    "WorstGroupProblem",
    "__version__",
    "attack",
    "backward",
    "descent_direction",
    "evaluate",
    "min_norm_point",
    "min_norm_weights",
    "write_robustbench",
]
