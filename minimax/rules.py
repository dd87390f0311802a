"""Outer descent-direction rules: candidates → a `Direction` d (the optimizer descends along −d).

Every rule sees the problem, θ, the batch and the inner solver's `Candidates`, and knows nothing
of how the candidates were found.

- `Danskin`: the gradient at the best candidate (PGD adversarial training's rule).
- `MaxLoss`: the gradient at each example's worst restart (the equal-compute baseline).
- `DDi`: the minimum-norm element of the hull of the candidate gradients (Danskin's Descent
  Direction), batch-level or per example.

About 470 lines, over the project's ~400: `Direction`, `Rule`, the `GramRule` template and the
three rules read together as one concept (a rule is a few lines over the template, and `RULES`
sits beside them); splitting `DDi` off would separate the template from its only full user.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor

from minimax import checks
from minimax.distributed import LOCAL, Communicator
from minimax.gradients import (
    batch_gradient,
    candidate_gradients,
    combine,
    flat_norm,
    gram,
    graph_gradients,
    inner_products,
    per_example_gradients,
)
from minimax.gramian import METHODS as GRAMIAN_METHODS
from minimax.gramian import batch_layerwise, per_example_layerwise, resolve_method
from minimax.inner.base import Candidates
from minimax.minnorm import MinNormResult, min_norm_product_weights, min_norm_weights
from minimax.nonfinite import NonFiniteError
from minimax.problem import Batch, Problem
from minimax.registry import Registry

__all__ = ["RULES", "DDi", "Danskin", "Direction", "GramRule", "GramVectors", "MaxLoss", "Rule"]


@dataclass(kw_only=True)
class Direction:
    """An outer direction d; the step is θ ← θ − η d.

    vector: d, a dict shaped like θ.
    weights: float64 weights of the candidate gradients that make d: [m] (batch-level) or [B, m]
        (per example); entries of dropped candidates are 0.
    norm: ‖d‖ (float64 scalar) of the vector itself (before normalizing), the stationarity
        measure.
    certificate: the Danskin bound on the directional derivative of the candidates' max along −d,
        max_i ⟨−d, g_i⟩ (batch-level) or Σ_b max_i ⟨−d, g_{b,i}⟩ (per example); None where the
        rule did not compute the candidate gradients. ≤ −‖d‖² certifies descent for DDi.
    kkt: the min-norm solver's KKT residual (DDi only).
    """

    vector: dict[str, Tensor]
    weights: Tensor
    norm: Tensor
    certificate: Tensor | None = None
    kkt: Tensor | None = None
    rule: str = ""
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __repr__(self) -> str:
        cert = "None" if self.certificate is None else f"{float(self.certificate):.4g}"
        return f"Direction({self.rule}, norm={float(self.norm):.4g}, certificate={cert})"


class Rule(ABC):
    """A descent-direction rule: ``rule(problem, params, batch, candidates) -> Direction``.

    `wants_scoring_graph`: whether the rule backpropagates through the inner solver's scoring
    forward (`Candidates.graph`) instead of running its own forward, so callers ask for it.
    `finite_only`: the rule needs a finite inner problem (pure strategies from `Enumerate`), so
    trainers over continuous perturbation sets leave it out of their choices.
    """

    reuse_scoring: bool = False
    finite_only: bool = False
    data_parallel: bool = False  # has a form over ranks (`minimax.distributed.data_parallel`)
    communicator: Communicator = LOCAL  # reduces gradients and values over ranks; LOCAL: none

    def wants_scoring_graph(self, restarts: int) -> bool:
        """Whether to ask an inner solver with m = ``restarts`` for its scoring graph (saves
        forwards; keeps the m candidates' activations alive until the rule has run)."""
        return self.reuse_scoring

    @abstractmethod
    def __call__(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} GiB"


def _one_hot(index: Tensor, m: int) -> Tensor:
    return torch.nn.functional.one_hot(index, m).to(torch.float64)


def _normalized(
    d: dict[str, Tensor], cert: Tensor | None, normalize: bool, scale: Tensor | None = None
) -> tuple[dict[str, Tensor], Tensor, Tensor | None]:
    """(d or d/‖d‖, ‖d‖, certificate rescaled alike); ‖d‖ is the norm of the vector itself.

    ``scale``: the size of the vectors d was combined from (Σ_blocks max_i ‖g_i‖). A d at the
    rounding level of that scale (‖d‖ ≤ 8·u·scale, u the unit roundoff of d's dtype) is
    numerically 0, a stationary point: ``normalize`` leaves it as it is rather than turning the
    rounding noise into a unit step.
    """
    norm = flat_norm(d)
    floor = 0.0
    if scale is not None and d:
        u = torch.finfo(next(iter(d.values())).dtype).eps
        floor = 8 * u * float(scale)
    if normalize and float(norm) > floor:
        d = {k: v / norm.to(v.dtype) for k, v in d.items()}
        cert = None if cert is None else cert / norm
    return d, norm, cert


def _max_certificate(
    problem: Problem,
    params: Mapping[str, Tensor],
    batch: Batch,
    candidates: Candidates,
    vector: Mapping[str, Tensor],
    communicator: Communicator,
) -> Tensor:
    grads = candidate_gradients(problem, params, batch, candidates.deltas)
    grads = communicator.mean(grads, candidates.batch_size)
    return (-inner_products(grads, vector)).max()


class _SingleGradient(Rule):
    """Rules that take one batch gradient; shared options ``certify`` and ``normalize``."""

    def __init__(self, *, certify: bool = False, normalize: bool = False) -> None:
        self.certify = certify
        self.normalize = normalize

    def __repr__(self) -> str:
        extra = ", normalize=True" if self.normalize else ""
        return f"{type(self).__name__}(certify={self.certify}{extra})"


class Danskin(_SingleGradient):
    """d = ∇_θ mean_b g(θ, δ_{i*,b}) at the best restart i* (highest batch-mean value).

    With one restart this is PGD adversarial training (Madry et al. 2018, Corollary C.2).
    ``certify=True`` also computes every candidate's gradient to report the certificate;
    ``normalize=True`` returns d/‖d‖ (``norm`` keeps ‖d‖).
    """

    reuse_scoring = True
    data_parallel = True

    def wants_scoring_graph(self, restarts: int) -> bool:
        return self.reuse_scoring and restarts == 1  # one gradient: keep no unused graphs

    def __call__(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        comm = self.communicator
        best = int(comm.batch_means(candidates.values).argmax())
        if candidates.graph is not None:  # backward through the scoring forward
            d = {k: v[0] for k, v in graph_gradients(problem, candidates.graph, [best]).items()}
        else:
            d = batch_gradient(problem, params, batch, candidates.deltas[best])
        d = comm.mean(d, candidates.batch_size)
        cert = None
        if self.certify:
            cert = _max_certificate(problem, params, batch, candidates, d, comm)
        d, norm, cert = _normalized(d, cert, self.normalize)
        weights = _one_hot(torch.tensor(best), candidates.m)
        return Direction(vector=d, weights=weights, norm=norm, certificate=cert, rule=repr(self))


class MaxLoss(_SingleGradient):
    """d = ∇_θ mean_b g(θ, δ*_b) with δ*_b each example's best restart (PGD with restarts).

    ``certify=True`` also reports Σ_b max_i ⟨−d, g_{b,i}⟩ from per-example gradients (costly);
    ``normalize=True`` returns d/‖d‖ (``norm`` keeps ‖d‖).
    """

    data_parallel = True

    def __call__(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        comm, b = self.communicator, candidates.batch_size
        d = comm.mean(batch_gradient(problem, params, batch, candidates.best_deltas()), b)
        cert = None
        if self.certify:
            grads = per_example_gradients(problem, params, batch, candidates.deltas)
            cert = (-inner_products(grads, d, lead=2)).reshape(candidates.m, -1).max(0).values.sum()
            cert = comm.mean({"cert": cert}, b)["cert"]  # the shard's sum is a mean over B_r
        weights = _one_hot(candidates.best_index(), candidates.m)
        d, norm, cert = _normalized(d, cert, self.normalize)
        return Direction(vector=d, weights=weights, norm=norm, certificate=cert, rule=repr(self))


@dataclass(frozen=True)
class GramVectors:
    """The vectors a `GramRule` weighs: n kept gradients in blocks, one simplex per block.

    stack: name → [n, *p], the kept gradients, block after block (this rank's, averaged over
        ranks by the template); or None where the rule never forms them and gives instead
    gram: K [n, n] float64 of the (global) gradients, and
    direction: α [n] ↦ d = Σ α_i g_i, a dict shaped like θ (e.g. one weighted backward);
    sizes: the blocks' sizes (sum n; one block for a batch-level rule, one per example otherwise);
    layout: bool [m] or [B, m], where the kept gradients sit in `Direction.weights` (row-major).
    """

    stack: dict[str, Tensor] | None
    sizes: list[int]
    layout: Tensor
    gram: Tensor | None = None
    direction: Callable[[Tensor], dict[str, Tensor]] | None = None
    precision: torch.dtype | None = None  # the dtype gram's entries were computed in

    def __post_init__(self) -> None:
        given = (self.stack is not None, self.gram is not None, self.direction is not None)
        if given not in ((True, False, False), (False, True, True)):
            raise ValueError(
                "GramVectors takes either stack, or gram and direction (stack=None), not a mix"
            )


def block_certificate(k_alpha: Tensor, sizes: list[int]) -> Tensor:
    """Σ_blocks max_{i ∈ block} ⟨−d, g_i⟩ = −Σ_blocks min_{i ∈ block} (Kα)_i, float64 scalar."""
    starts = torch.tensor([0, *sizes[:-1]]).cumsum(0).tolist()
    cert = -sum(k_alpha[s : s + n].min() for s, n in zip(starts, sizes))
    return torch.as_tensor(cert, dtype=torch.float64)


class GramRule(Rule):
    """A rule over the Gram matrix of candidate gradients, in five phases:

        gradients g_i  →  K = [⟨g_i, g_j⟩] (float64)  →  weights α  →  d = Σ α_i g_i
                       →  certificate Σ_blocks max_{i ∈ block} ⟨−d, g_i⟩ = −Σ min (Kα)_i

    A subclass defines `gradients` (which vectors, in which blocks) and `weigh` (α from K, with
    its KKT residual in a `MinNormResult`); ``normalize=True`` returns d/‖d‖. `gradients` may
    return K and α ↦ d instead of the vectors (`GramVectors` with ``stack=None``): the rest of
    the template, the checks and the certificate are the same.
    """

    normalize: bool = False

    @abstractmethod
    def gradients(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        """The vectors to weigh, in blocks."""

    @abstractmethod
    def weigh(self, gram_matrix: Tensor, sizes: list[int]) -> MinNormResult:
        """Weights α [n] (on the product of the blocks' simplices) from K [n, n]."""

    def __call__(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        vectors = self.gradients(problem, params, batch, candidates)
        direction: Callable[[Tensor], dict[str, Tensor]]  # α ↦ d = Σ α_i g_i
        if vectors.stack is not None:
            stack = self.communicator.mean(vectors.stack, candidates.batch_size)  # over ranks
            k, direction = gram(stack), partial(combine, stack)
        else:  # the rule formed K itself and forms d by its own means
            assert vectors.gram is not None and vectors.direction is not None
            k, direction = vectors.gram, vectors.direction
        if not bool(torch.isfinite(k).all()):  # the QP reads K on the host anyway: same sync
            raise NonFiniteError(
                f"{self!r}: the candidate gradients are not finite (NaN or Inf in their Gram "
                "matrix); check the loss for overflow, or lower the learning rate",
                what="gradients",
            )
        precision = {} if vectors.precision is None else {"precision": vectors.precision}
        result = self.weigh(k, vectors.sizes, **precision)
        alpha = result.weights
        d = direction(alpha)
        raw = block_certificate(k @ alpha, vectors.sizes)
        # ‖d‖ from the vector: √(αᵀKα) cannot resolve below ~1e-8 relative (cancellation)
        scale = None  # the rounding floor of normalize: only computed when normalizing
        if self.normalize:
            scale = k.diagonal().clamp_min(0).sqrt().max() * len(vectors.sizes)
        d, norm, cert = _normalized(d, raw, self.normalize, scale)
        layout = vectors.layout
        weights = torch.zeros(layout.numel(), dtype=torch.float64, device=alpha.device)
        weights[layout.reshape(-1).to(alpha.device)] = alpha
        return Direction(
            vector=d,
            weights=weights.reshape(layout.shape),
            norm=norm,
            certificate=cert,
            kkt=result.kkt,
            rule=repr(self),
            extras={"gram": k},
        )


class DDi(GramRule):
    """Danskin's Descent Direction: the min-norm element of the hull of candidate gradients.

    Args:
        per_example: ``False`` (default): one weight per restart, the hull of the m batch-mean
            gradients (as in the paper). ``True``: the exact Danskin set of the batch loss, the
            Minkowski sum of the per-example hulls; a QP over a product of B simplices (see
            ``gramian`` for how its m·B per-example Gramian is formed).
        tolerance: keep only ε-maximizers: candidates whose value is within τ of the best (per
            restart mean at batch level, per example otherwise). None keeps all.
        normalize: return d / ‖d‖ (the norm field keeps ‖d‖ before normalizing).
        reuse_scoring: take the m gradients by backpropagating through the inner solver's
            scoring forwards where it keeps them (saves m forwards per step; the m candidates'
            activations then stay alive until the gradients are taken). Batch level, materialized
            only.
        method: the min-norm solver, a name in `minimax.minnorm.METHODS` (batch level).
        memory_budget: bytes the materialized per-example gradients may take before an error
            suggests ``per_example=False`` (the layerwise Gramian never forms them).
        gramian: how K and d are formed (`minimax.gramian`, docs/per-example.md).
            ``"layerwise"``: K layer by layer from one forward + backward over the m·B candidate
            rows, d by one weighted backward, never holding m·B (per example) or m (batch level)
            full gradients. ``"materialized"``: the gradients themselves (the reference).
            ``"auto"`` (default): layerwise per example when every parameterised module has a
            layer rule; materialized at batch level, where it measured faster.

    Under data parallelism (`minimax.distributed.data_parallel`) the m batch-level gradients
    are averaged over ranks in one collective before K; per-example DDi and batch-level
    ``gramian="layerwise"`` are refused there.
    """

    data_parallel = True

    def __init__(
        self,
        *,
        per_example: bool = False,
        tolerance: float | None = None,
        normalize: bool = False,
        reuse_scoring: bool = True,
        method: str = "wolfe",
        memory_budget: int = 2 * 1024**3,
        gramian: str = "auto",
    ) -> None:
        if tolerance is not None:
            tolerance = checks.real_number("tolerance", tolerance, nonnegative=True)
        self.per_example = per_example
        self.gramian = checks.choice("gramian", gramian, GRAMIAN_METHODS)
        # per-example gradients and the layerwise pass need their own forward: no reuse there
        self.reuse_scoring = reuse_scoring and not per_example and gramian != "layerwise"
        self.tolerance = tolerance
        self.normalize = normalize
        self.method = method
        self.memory_budget = memory_budget

    def __repr__(self) -> str:
        opts = [f"per_example={self.per_example}"]
        if self.tolerance is not None:
            opts.append(f"tolerance={self.tolerance:g}")
        if self.normalize:
            opts.append("normalize=True")
        if not self.reuse_scoring and not self.per_example and self.gramian != "layerwise":
            opts.append("reuse_scoring=False")
        if self.method != "wolfe":
            opts.append(f"method={self.method!r}")
        if self.gramian != "auto":
            opts.append(f"gramian={self.gramian!r}")
        return f"DDi({', '.join(opts)})"

    def weigh(
        self, gram_matrix: Tensor, sizes: list[int], precision: torch.dtype | None = None
    ) -> MinNormResult:
        if self.per_example:
            return min_norm_product_weights(gram_matrix, sizes, precision=precision)
        return min_norm_weights(gram_matrix, method=self.method, precision=precision)

    def gradients(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        if self.per_example:
            return self._per_example(problem, params, batch, candidates)
        keep = torch.ones(candidates.m, dtype=torch.bool)
        if self.tolerance is not None:
            means = self.communicator.batch_means(candidates.values)
            keep = (means >= means.max() - self.tolerance).cpu()
        idx = torch.nonzero(keep).flatten()
        if self.gramian == "layerwise":
            if self.communicator.active:
                raise ValueError(
                    "DDi(gramian='layerwise') is not data-parallel: K of the global batch-mean "
                    "gradients needs cross-rank inner products that per-rank Gramians lack. Use "
                    "gramian='auto' or 'materialized' under torch.distributed"
                )
            deltas = candidates.deltas[idx.to(candidates.deltas.device)]
            k, direction = batch_layerwise(problem, params, batch, deltas, repr(self))
            precision = next(iter(params.values())).dtype  # K formed layer by layer in it
            return GramVectors(
                None, [len(idx)], keep, gram=k, direction=direction, precision=precision
            )
        if candidates.graph is not None:  # backward through the scoring forward of each
            grads = graph_gradients(problem, candidates.graph, idx.tolist())
        else:
            grads = candidate_gradients(problem, params, batch, candidates.deltas[idx])
        return GramVectors(grads, [len(idx)], keep)

    def _per_example(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        if self.communicator.active:
            raise ValueError(
                "DDi(per_example=True) is not data-parallel: its QP couples the m·B per-example "
                "gradients of the whole batch, which every rank would need (an all-gather of "
                "m·B·P numbers). Use DDi(per_example=False) under torch.distributed, or one "
                "process"
            )
        if problem.examples_coupled:
            raise ValueError(
                "DDi(per_example=True) needs a batch objective that is a sum of per-example "
                "maxima, "
                f"but in {problem!r} the examples are coupled (train-mode BatchNorm statistics): "
                "use DDi(per_example=False), ModuleProblem(..., batchnorm='eval'), or a model "
                "without BatchNorm (e.g. GroupNorm)"
            )
        values = candidates.values.T  # [B, m]; blocks are examples
        if self.tolerance is not None:  # keep each example's ε-maximizers
            mask = values >= values.max(dim=1, keepdim=True).values - self.tolerance
        else:
            mask = torch.ones_like(values, dtype=torch.bool)
        sizes = [int(s) for s in mask.sum(dim=1).tolist()]
        if resolve_method(self.gramian, problem, params) == "layerwise":
            k, direction = per_example_layerwise(
                problem, params, batch, candidates.deltas, mask, repr(self)
            )
            precision = next(iter(params.values())).dtype  # K formed layer by layer in it
            return GramVectors(None, sizes, mask, gram=k, direction=direction, precision=precision)
        return GramVectors(
            self._materialized(problem, params, batch, candidates, mask), sizes, mask
        )

    def _materialized(
        self,
        problem: Problem,
        params: Mapping[str, Tensor],
        batch: Batch,
        candidates: Candidates,
        mask: Tensor,
    ) -> dict[str, Tensor]:
        """The reference: the kept per-example gradients [n, *p], ordered (example, candidate)."""
        m, b = candidates.m, candidates.batch_size
        numel = sum(v.numel() for v in params.values())
        need = m * b * numel * next(iter(params.values())).element_size()
        if need > self.memory_budget:
            raise MemoryError(
                f"per-example DDi needs {_bytes(need)} of per-example gradients "
                f"(m={m} × B={b} × {numel} parameters), over the budget of "
                f"{_bytes(self.memory_budget)}: use DDi(per_example=False), "
                "gramian='layerwise', a smaller batch, or raise memory_budget"
            )
        grads = per_example_gradients(problem, params, batch, candidates.deltas)  # [m, B, *p]
        flat_mask = mask.reshape(-1)  # reorder to [B·m, *p] (example, candidate), keep the mask
        return {
            k: v.transpose(0, 1).reshape(b * m, *v.shape[2:])[flat_mask] for k, v in grads.items()
        }


RULES: Registry[Rule] = Registry("rule")
RULES.add("danskin", Danskin, aliases=("pgd",))
RULES.add("maxloss", MaxLoss)
RULES.add("ddi", DDi)


def _ddi_per_example(**kwargs: Any) -> Rule:
    """DDi over the exact Danskin set of the batch loss (a product of per-example simplices)."""
    return DDi(per_example=True, **kwargs)


RULES.add("ddi-example", _ddi_per_example)
