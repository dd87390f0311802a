"""Inner maximizers: each returns `Candidates` (deltas [m, B, ...], values [m, B]).

`INNER_SOLVERS` maps names to the solver classes (a new solver: one class, one registry line).
"""

from minimax.inner.apgd import APGD, apgd_checkpoints, dlr_loss
from minimax.inner.apgd_targeted import APGDTargeted, targeted_dlr_loss
from minimax.inner.base import Candidates, InnerSolver, make_generator, starting_points
from minimax.inner.enumerate import Enumerate
from minimax.inner.grid import Grid, grid_axes, local_maxima
from minimax.inner.pgd import FGSM, PGD
from minimax.inner.square import Square, margin_loss, square_fraction
from minimax.registry import Registry

INNER_SOLVERS: Registry[InnerSolver] = Registry("inner solver")
INNER_SOLVERS.add("pgd", PGD)
INNER_SOLVERS.add("fgsm", FGSM)
INNER_SOLVERS.add("apgd", APGD)
INNER_SOLVERS.add("apgd-t", APGDTargeted)
INNER_SOLVERS.add("square", Square)
INNER_SOLVERS.add("grid", Grid)
INNER_SOLVERS.add("enumerate", Enumerate)

__all__ = [
    "APGD",
    "FGSM",
    "INNER_SOLVERS",
    "PGD",
    "APGDTargeted",
    "Candidates",
    "Enumerate",
    "Grid",
    "InnerSolver",
    "Square",
    "apgd_checkpoints",
    "dlr_loss",
    "grid_axes",
    "local_maxima",
    "make_generator",
    "margin_loss",
    "square_fraction",
    "starting_points",
    "targeted_dlr_loss",
]
