"""The execution engine: the one owner of evaluating and differentiating g(θ, δ; batch).

    optim ──► inner solver ──► engine ──► rule ──► min-norm QP
              (asks the engine  values, ∇_δ g,     weighs K,
               for values)      gradients, K,      certifies
                                α ↦ d, passes

`Engine(problem, ...)` holds the execution choices (stacking, gradient mode, Gramian mode,
scoring-graph reuse, memory budget, the data-parallel `Communicator`); `engine_of(problem)` is a
problem's default engine. Modules: `core.py` (`Engine`), `module.py` (a `ModuleProblem`'s
BatchNorm modes, stacked forwards, logits), `gradients.py` (candidate and per-example gradients,
Gram matrices), `gramian/` (the layerwise per-example Gramian), `passes.py` (`PassCounter`),
`scoring.py` (`ScoringGraph`).
"""

from minimax.engine.core import Engine, VectorizationWarning, as_engine, engine_of
from minimax.engine.passes import PassCounter
from minimax.engine.scoring import ScoringGraph

__all__ = [
    "Engine",
    "PassCounter",
    "ScoringGraph",
    "VectorizationWarning",
    "as_engine",
    "engine_of",
]
