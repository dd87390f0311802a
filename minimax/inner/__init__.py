"""Inner maximizers: each returns `Candidates` (deltas [m, B, ...], values [m, B]).

`INNER_SOLVERS` maps names to the solver classes (a new solver: one class, one registry line).
"""

from minimax.inner.apgd import APGD, apgd_checkpoints, dlr_loss
from minimax.inner.base import Candidates, InnerSolver, make_generator, starting_points
from minimax.inner.grid import Grid, grid_axes, local_maxima
from minimax.inner.pgd import FGSM, PGD
from minimax.registry import Registry

INNER_SOLVERS: Registry[InnerSolver] = Registry("inner solver")
INNER_SOLVERS.add("pgd", PGD)
INNER_SOLVERS.add("fgsm", FGSM)
INNER_SOLVERS.add("apgd", APGD)
INNER_SOLVERS.add("grid", Grid)

__all__ = [
    "APGD",
    "FGSM",
    "INNER_SOLVERS",
    "PGD",
    "Candidates",
    "Grid",
    "InnerSolver",
    "apgd_checkpoints",
    "dlr_loss",
    "grid_axes",
    "local_maxima",
    "make_generator",
    "starting_points",
]
