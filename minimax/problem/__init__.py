"""Min-max objectives, declared: g(θ, δ; batch) → per-example values of shape [B].

θ is a dict of tensors (torch.func style), δ has shape [B, *event] for one candidate, or
[*lead, B, *event] for several candidates evaluated at once (e.g. m restarts stacked: [m, B, ...]).

Two builders:

- `FunctionProblem` wraps a plain function ``fn(params, delta, batch) -> [B]`` (toy problems);
- `ModuleProblem` wraps an ``nn.Module`` and a per-example loss through
  `torch.func.functional_call`: g(θ, δ; (x, y)) = loss(model_θ(x + δ), y).

A problem declares; `minimax.engine.Engine` evaluates it and counts its passes (in units of one
pass over one batch of B examples, so that rules can be compared at equal compute).
"""

from minimax.problem.base import Batch, Params, Problem
from minimax.problem.function import FunctionProblem
from minimax.problem.module import ModuleProblem

__all__ = ["Batch", "FunctionProblem", "ModuleProblem", "Params", "Problem"]
