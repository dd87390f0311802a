"""Inner maximizers: each returns `Candidates` (deltas [m, B, ...], values [m, B])."""

from minimax.inner.apgd import APGD, apgd_checkpoints, dlr_loss
from minimax.inner.base import Candidates, InnerSolver
from minimax.inner.enumerate import Enumerate
from minimax.inner.grid import Grid
from minimax.inner.pgd import FGSM, PGD

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "Candidates",
    "Enumerate",
    "Grid",
    "InnerSolver",
    "apgd_checkpoints",
    "dlr_loss",
]
