"""`Engine`: the one owner of evaluating and differentiating g(θ, δ; batch).

Every forward and backward of g runs here, and is counted here (`PassCounter`, one per problem,
shared by every engine over it). The engine picks how candidates are evaluated (loop, vmap or
one stacked forward), keeps the last scoring forward's graph where the step's rule can use it,
reduces over ranks (its `Communicator`) and refuses non-finite values. Loops over one candidate
at a time (`input_gradients`, `evaluator`) are in `minimax.engine.loops`; differentiation
(candidate gradients, the Gram matrix and α ↦ d) is in `minimax.engine.gradients`, reached
through the methods below.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor
from torch.func import vmap

from minimax import checks
from minimax.distributed import LOCAL, Communicator
from minimax.engine import gradients as _grads
from minimax.engine import module as _module
from minimax.engine.loops import CandidateLoops
from minimax.engine.passes import PassCounter
from minimax.engine.scoring import ScoringGraphs
from minimax.nonfinite import check_direction, check_gram, check_values
from minimax.problem import Batch, Problem
from minimax.sets import PerturbationSet

__all__ = ["Engine", "VectorizationWarning", "as_engine", "engine_of"]

GRADIENT_MODES = ("auto", "vmap", "loop")
GRAMIANS = ("auto", "layerwise", "materialized")


class VectorizationWarning(RuntimeWarning):
    """A vectorized path (torch.func ``vmap``) failed and a loop is used instead (same values)."""


@dataclass
class _Shared:
    """What every engine over one problem shares: its pass counter and vmap fallbacks."""

    passes: PassCounter = field(default_factory=PassCounter)
    fallbacks: set[str] = field(default_factory=set)


_SHARED: weakref.WeakKeyDictionary[Problem, _Shared] = weakref.WeakKeyDictionary()
_DEFAULT: weakref.WeakKeyDictionary[Problem, Engine] = weakref.WeakKeyDictionary()


class Engine(ScoringGraphs, CandidateLoops):
    """Evaluates and differentiates the objective of ``problem``.

    Args:
        problem: the declared min-max problem.
        stacking: how n candidates [n, B, ...] are evaluated: ``"stack"`` (one forward on n·B
            inputs; not with per-restart BatchNorm), ``"vmap"``, ``"loop"`` (one forward per
            candidate), or ``"auto"`` (default: `minimax.engine.module.stacking_mode`).
        gradients: the m candidate gradients by ``"vmap"`` or a ``"loop"`` of backwards;
            ``"auto"`` (default): the loop on CPU (as fast, less memory), else vmap.
        gramian: how per-example and layerwise Gram matrices are formed (docs/per-example.md):
            ``"layerwise"`` (K layer by layer from one forward + backward of the m·B rows, d by
            one weighted backward), ``"materialized"`` (the gradients themselves), ``"auto"``
            (default: layerwise per example where every parameterised module has a layer rule,
            materialized at batch level).
        reuse_scoring: backpropagate through the inner solver's scoring forward where each
            candidate has its own and the rule takes the gradients at them (saves m forwards
            per step; their activations stay alive until then).
        memory_budget: bytes materialized per-example gradients may take.
        communicator: data parallelism (`minimax.distributed`): reduces gradients and values
            over ranks and synchronises BatchNorm statistics; `LOCAL` (default): one process.
    """

    problem: Problem

    def __init__(
        self,
        problem: Problem,
        *,
        stacking: str = "auto",
        gradients: str = "auto",
        gramian: str = "auto",
        reuse_scoring: bool = True,
        memory_budget: int = 2 * 1024**3,
        communicator: Communicator = LOCAL,
    ) -> None:
        if not isinstance(problem, Problem):
            raise TypeError(f"Engine needs a minimax Problem, got {type(problem).__name__}")
        if not isinstance(communicator, Communicator):
            raise TypeError(
                "communicator must be a minimax.distributed.Communicator, got "
                f"{type(communicator).__name__}"
            )
        if stacking not in _module.STACKINGS:
            raise ValueError(
                f"stacking must be 'auto', 'stack', 'vmap' or 'loop', got {stacking!r}"
            )
        self.problem = problem
        self.stacking = stacking
        mode = checks.choice("gradients", gradients, GRADIENT_MODES)
        self.gradient_mode = cast(_grads.GradientMode, mode)
        self.gramian_mode = checks.choice("gramian", gramian, GRAMIANS)
        self.reuse_scoring = bool(reuse_scoring)
        self.memory_budget = checks.integer(
            "memory_budget", memory_budget, minimum=0, maximum=2**62
        )
        self.communicator = communicator
        self._shared = _SHARED.setdefault(problem, _Shared())
        ScoringGraphs.__init__(self)

    def __repr__(self) -> str:
        opts = [f"{self.problem!r}"]
        if self.stacking != "auto":
            opts.append(f"stacking={self.stacking!r}")
        if self.gramian_mode != "auto":
            opts.append(f"gramian={self.gramian_mode!r}")
        if not self.reuse_scoring:
            opts.append("reuse_scoring=False")
        if self.communicator is not LOCAL:
            opts.append(f"communicator={self.communicator!r}")
        return f"Engine({', '.join(opts)})"

    # -- counting ---------------------------------------------------------------------------
    @property
    def passes(self) -> PassCounter:
        """Forward and backward passes over this problem (shared by its engines)."""
        return self._shared.passes

    def count(self, *, forward: int = 0, backward: int = 0) -> None:
        """Count passes run by the engine's own code (`minimax.engine` only)."""
        self._shared.passes.add(forward=forward, backward=backward)

    @contextlib.contextmanager
    def uncounted(self) -> Iterator[None]:
        """Passes run inside are not counted (a re-measure that is not part of a step)."""
        with self.passes.paused():
            yield

    def can_vmap(self, what: str) -> bool:
        """Whether the vectorized path ``what`` should be tried."""
        return self.problem.vectorize and what not in self._shared.fallbacks

    def vmap_failed(self, what: str, error: Exception) -> None:
        """Record that the vectorized path ``what`` cannot run (a one-time warning per path)."""
        if what not in self._shared.fallbacks:
            self._shared.fallbacks.add(what)
            warnings.warn(
                f"{what}: torch.func.vmap failed on {self.problem!r} ({type(error).__name__}: "
                f"{error}); using a loop over candidates from now on (same values, slower). Build "
                "the problem with vectorize=False to choose the loop and silence this warning.",
                VectorizationWarning,
                stacklevel=3,
            )

    # -- evaluation -------------------------------------------------------------------------
    def objective(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        """g at one candidate δ [B, *event] → [B], BatchNorm in the problem's mode (uncounted:
        the callers below count)."""
        if not getattr(self.problem, "batchnorm_layers", True):  # nothing to freeze
            return self.problem.objective(params, delta, batch)
        with _module.frozen(self.problem):
            return self.problem.objective(params, delta, batch)

    def values(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """g(θ, δ; batch): deltas [*lead, B, *event] → values [*lead, B].

        Each leading index is its own forward (no batch statistics shared between candidates);
        the counter grows by prod(lead) (by 1 where the problem evaluates all in one pass).
        """
        lead = self.problem.check_delta(deltas, batch)
        if not lead:
            self.count(forward=1)
            return self.objective(params, deltas, batch)
        shape = deltas.shape[len(lead) :]
        flat = deltas.reshape(-1, *shape)
        fused = self.problem.values_in_one_pass(params, flat, batch)
        if fused is not None:
            self.count(forward=1)
            return fused.reshape(*lead, shape[0])
        self.count(forward=math.prod(lead))
        return self._stacked(params, flat, batch).reshape(*lead, shape[0])

    def _stacked(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """[n, B, *event] → [n, B] by the stacking mode; vmap falls back to the loop."""
        if deltas.shape[0] == 1 and isinstance(self.problem, _module.ModuleProblem):
            return self.objective(params, deltas[0], batch).unsqueeze(0)  # its own forward
        mode = _module.stacking_mode(self.problem, deltas, self.stacking)
        if mode == "stack":
            return _module.stacked_values(self.problem, params, deltas, batch)
        if mode == "vmap" and self.can_vmap("values"):
            try:
                return vmap(lambda d: self.objective(params, d, batch))(deltas)
            except (RuntimeError, NotImplementedError, ValueError) as err:
                self.vmap_failed("values", err)
        return torch.stack([self.objective(params, d, batch) for d in deltas])

    def values_and_input_grad(
        self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch
    ) -> tuple[Tensor, Tensor]:
        """g and ∇_δ g at deltas [*lead, B, *event]: values [*lead, B] (detached) and the
        gradient of their sum, shaped like deltas. One forward and one backward per candidate."""
        lead = self.problem.check_delta(deltas, batch)
        n = math.prod(lead)
        if n == 1 and len(lead) <= 1:  # one candidate (PGD's loop): no reshape by shape
            # its δ [B, *event] is the leaf (no select/stack in the graph to undo), evaluated by
            # one forward of the objective (already checked: no second shape check)
            d = (deltas.squeeze(0) if lead else deltas).detach().requires_grad_(True)
            with torch.enable_grad():
                v = self.objective(params, d, batch)  # ∇ of Σ_b v_b: v's backward from ones
                (g,) = torch.autograd.grad(v, d, torch.ones_like(v))
            self.count(forward=1, backward=1)
            self.last_values = v = v.detach()
            return (v.unsqueeze(0), g.unsqueeze(0)) if lead else (v, g)
        shape = deltas.shape[len(lead) :]
        d = (deltas.reshape(shape) if n == 1 else deltas).detach().requires_grad_(True)
        with torch.enable_grad():
            v = self.objective(params, d, batch) if n == 1 else self.values(params, d, batch)
            (g,) = torch.autograd.grad(v.sum(), d)
        self.count(forward=1 if n == 1 else 0, backward=n)
        self.last_values = v = v.detach()
        return v.reshape(*lead, shape[0]), g.reshape(deltas.shape)

    def logits(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """Class logits model_θ(x + δ) of a classifier's problem: deltas [n, B, ...] →
        [n, B, C], one forward per candidate."""
        self.count(forward=deltas.shape[0])
        return torch.stack([_module.logits(self.problem, params, d, batch) for d in deltas])

    def classifier(self, params: Mapping[str, Tensor]) -> Callable[[Tensor], Tensor]:
        """model_θ as a function of inputs [n, ...] → logits [n, C] (counted, statistics frozen):
        for attacks that move the inputs themselves (`minimax.engine.module.classifier`)."""
        return _module.classifier(self.problem, params, self.count)

    def with_loss(
        self,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        *,
        stacking: str | None = None,
        perturbation: PerturbationSet | None = None,
    ) -> Engine:
        """An engine over the same classifier under another per-example loss of its logits
        (e.g. an attack's surrogate such as `minimax.extend.dlr_loss`), counting on this counter;
        ``stacking`` and ``perturbation`` default to this engine's and problem's."""
        other = _module.with_loss(self.problem, loss_fn, perturbation)
        _SHARED[other] = self._shared
        mode = self.stacking if stacking is None else stacking
        return Engine(other, stacking=mode, communicator=self.communicator)

    @property
    def rows_independent(self) -> bool:
        """Whether any subset of a batch (x[rows], y[rows]) may be evaluated on its own: a
        classifier's problem whose examples are not coupled (no train-mode BatchNorm)."""
        return _module.splittable(self.problem)

    def chunk(self, deltas: Tensor) -> int | None:
        """How many candidates of deltas [n, B, *event] an inner solver should evaluate per call:
        1 where they are evaluated one by one (each backward follows its own forward, one
        candidate's activations alive at a time), None: all at once."""
        mode = _module.stacking_mode(self.problem, deltas, self.stacking)
        return 1 if mode == "loop" else None

    def update_statistics(self, batch: Batch, delta: Tensor) -> None:
        """Update running statistics (BatchNorm) from one no-grad forward at δ [B, *event], then
        synchronise them over ranks (``batchnorm="sync"`` communicators)."""
        if not self.problem.has_running_statistics:
            return
        if _module.statistics_forward(self.problem, batch, delta):
            self.count(forward=1)
        model = getattr(self.problem, "model", None)
        self.communicator.synchronize_statistics(model)

    # -- over ranks, and the non-finite refusal ---------------------------------------------
    def mean(self, tensors: Mapping[str, Tensor], count: int) -> dict[str, Tensor]:
        """Example-weighted means over ranks of per-rank means over ``count`` examples."""
        return self.communicator.mean(tensors, count)

    def batch_means(self, values: Tensor) -> Tensor:
        """values [m, B_r] → the global per-candidate batch means [m]."""
        return self.communicator.batch_means(values)

    def refuse_nonfinite(
        self, vector: Mapping[str, Tensor], values: Tensor | None, rule: str = ""
    ) -> None:
        """Raise `minimax.NonFiniteError` unless d and the candidates' values are all finite
        (one fused check, one host sync)."""
        check_direction(vector, values, rule=rule)

    @staticmethod
    def refuse_nonfinite_values(values: Tensor, solver: str) -> None:
        """Raise `minimax.NonFiniteError` unless the objective values found by ``solver`` are
        all finite (one check)."""
        check_values(values, solver=solver)

    # -- differentiation (minimax.engine.gradients) -----------------------------------------
    def gradient(
        self, params: Mapping[str, Tensor], batch: Batch, delta: Tensor
    ) -> dict[str, Tensor]:
        """∇_θ mean_b g(θ, δ_b) at one candidate δ [B, *event], averaged over ranks."""
        return self.mean(_grads.batch_gradient(self, params, batch, delta), delta.shape[0])

    def candidate_gradient(
        self, params: Mapping[str, Tensor], batch: Batch, deltas: Tensor, index: int
    ) -> dict[str, Tensor]:
        """g_i of candidate ``index`` of deltas [m, B, ...], averaged over ranks; through the
        kept scoring graph where there is one."""
        graph = self.take_graph(deltas)
        if graph is None:
            return self.gradient(params, batch, deltas[index])
        d = {k: v[0] for k, v in _grads.graph_gradients(self, graph, [index]).items()}
        return self.mean(d, deltas.shape[1])

    def candidate_gradients(
        self,
        params: Mapping[str, Tensor],
        batch: Batch,
        deltas: Tensor,
        indices: Sequence[int] | None = None,
    ) -> dict[str, Tensor]:
        """g_i for the candidates ``indices`` (default all) of deltas [m, B, ...] → [n, *p],
        averaged over ranks; through the kept scoring graph where there is one."""
        graph = self.take_graph(deltas)
        if graph is not None:
            idx = list(range(deltas.shape[0])) if indices is None else list(indices)
            stack = _grads.graph_gradients(self, graph, idx)
        else:
            sel = deltas if indices is None else deltas[torch.tensor(list(indices))]
            stack = _grads.candidate_gradients(self, params, batch, sel, mode=self.gradient_mode)
        return self.mean(stack, deltas.shape[1])

    def per_example_gradients(
        self, params: Mapping[str, Tensor], batch: Batch, deltas: Tensor
    ) -> dict[str, Tensor]:
        """g_{i,b} = ∇_θ g(θ, δ_{i,b}) / B: deltas [m, B, ...] → [m, B, *p] (this rank's)."""
        return _grads.per_example_gradients(self, params, batch, deltas)

    def gram(
        self, stack: Mapping[str, Tensor], count: int, what: str
    ) -> tuple[Tensor, Callable[[Tensor], dict[str, Tensor]]]:
        """(K [n, n] float64, α ↦ d = Σ α_i g_i) of this rank's vectors stack [n, *p] (means
        over ``count`` examples), averaged over ranks first; refuses a non-finite K."""
        mean = self.mean(stack, count)
        k = _grads.gram(mean)
        check_gram(k, what)
        return k, lambda alpha: _grads.combine(mean, alpha)

    def gramian(
        self,
        params: Mapping[str, Tensor],
        batch: Batch,
        deltas: Tensor,
        mask: Tensor,
        *,
        per_example: bool,
        what: str,
    ) -> tuple[Tensor, Callable[[Tensor], dict[str, Tensor]]]:
        """(K float64, α ↦ d) of the candidates deltas [m, B, ...] kept by ``mask`` ([m] batch
        level, [B, m] per example): the one place that picks layerwise, materialized or the
        scoring graph (`minimax.engine.gramian.gramian`); refuses a non-finite K."""
        from minimax.engine.gramian import gramian  # imports this module's helpers

        k, direction = gramian(
            self, params, batch, deltas, mask, per_example=per_example, what=what
        )
        check_gram(k, what)
        return k, direction


def engine_of(problem: Problem) -> Engine:
    """The default engine of ``problem`` (one per problem, created on first use)."""
    engine = _DEFAULT.get(problem)
    if engine is None:
        engine = _DEFAULT[problem] = Engine(problem)
    return engine


def as_engine(target: Problem | Engine) -> Engine:
    """``target`` itself if it is an engine, else the problem's default engine."""
    return target if isinstance(target, Engine) else engine_of(target)
