"""Outer descent-direction rules: candidates → a `Direction` d (the optimizer descends along −d).

Every rule sees the engine (`minimax.engine.Engine`, or a problem: then its default engine), θ,
the batch and the inner solver's `Candidates`; it asks the engine for gradients or for K and
α ↦ d, weighs and certifies, and knows nothing of how the candidates were found or how g is
evaluated.

- `Danskin`: the gradient at the best candidate (PGD adversarial training's rule).
- `MaxLoss`: the gradient at each example's worst restart (the equal-compute baseline).
- `DDi`: the minimum-norm element of the hull of the candidate gradients (Danskin's Descent
  Direction), batch-level or per example.

"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from minimax import checks
from minimax.engine import Engine, as_engine
from minimax.engine.gradients import flat_norm, inner_products
from minimax.inner.base import Candidates
from minimax.minnorm import MinNormResult, min_norm_product_weights, min_norm_weights
from minimax.problem import Batch, Problem
from minimax.registry import Registry
from minimax.tolerance import ShrinkingTolerance

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
    """A descent-direction rule: ``rule(engine, params, batch, candidates) -> Direction``.

    ``engine`` is a `minimax.engine.Engine` (a `Problem` is taken as its default engine).
    `need`: which candidate gradients the rule takes, so that the engine can keep the scoring
    forward's graph for them: ``"one"`` (one candidate's), ``"all"`` (every candidate's batch
    gradient) or ``"none"`` (anything else: its own forwards).
    `finite_only`: the rule needs a finite inner problem (pure strategies from `Enumerate`), so
    trainers over continuous perturbation sets leave it out of their choices.
    `data_parallel`: the rule has a form over ranks (an engine with a `Communicator`).
    """

    need: str = "none"
    finite_only: bool = False
    data_parallel: bool = False

    def __call__(
        self,
        engine: Engine | Problem,
        params: Mapping[str, Tensor],
        batch: Batch,
        candidates: Candidates,
    ) -> Direction:
        return self.direction(as_engine(engine), params, batch, candidates)

    @abstractmethod
    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        """What a rule defines: the `Direction` from the candidates."""

    def state_dict(self) -> dict[str, Any]:
        """What the rule carries from one step to the next (empty: a stateless rule)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict`; a stateless rule accepts only an empty state."""
        if not isinstance(state, Mapping):
            raise TypeError(f"{self!r}: a rule's state must be a dict, got {type(state).__name__}")
        if state:
            raise ValueError(
                f"{self!r} keeps no state, got one with keys {sorted(state)}: it was saved by "
                "another rule"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


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
    engine: Engine,
    params: Mapping[str, Tensor],
    batch: Batch,
    candidates: Candidates,
    vector: Mapping[str, Tensor],
) -> Tensor:
    """max_i ⟨−d, g_i⟩ over every candidate's (global) batch gradient."""
    grads = engine.candidate_gradients(params, batch, candidates.deltas)
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

    need = "one"
    data_parallel = True

    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        best = int(engine.batch_means(candidates.values).argmax())
        d = engine.candidate_gradient(params, batch, candidates.deltas, best)
        cert = None
        if self.certify:
            cert = _max_certificate(engine, params, batch, candidates, d)
        d, norm, cert = _normalized(d, cert, self.normalize)
        weights = _one_hot(torch.tensor(best), candidates.m)
        return Direction(vector=d, weights=weights, norm=norm, certificate=cert, rule=repr(self))


class MaxLoss(_SingleGradient):
    """d = ∇_θ mean_b g(θ, δ*_b) with δ*_b each example's best restart (PGD with restarts).

    ``certify=True`` also reports Σ_b max_i ⟨−d, g_{b,i}⟩ from per-example gradients (costly);
    ``normalize=True`` returns d/‖d‖ (``norm`` keeps ‖d‖).
    """

    data_parallel = True

    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        b = candidates.batch_size
        d = engine.gradient(params, batch, candidates.best_deltas())
        cert = None
        if self.certify:
            grads = engine.per_example_gradients(params, batch, candidates.deltas)
            cert = (-inner_products(grads, d, lead=2)).reshape(candidates.m, -1).max(0).values.sum()
            cert = engine.mean({"cert": cert}, b)["cert"]  # the shard's sum is a mean over B_r
        weights = _one_hot(candidates.best_index(), candidates.m)
        d, norm, cert = _normalized(d, cert, self.normalize)
        return Direction(vector=d, weights=weights, norm=norm, certificate=cert, rule=repr(self))


@dataclass(frozen=True)
class GramVectors:
    """The vectors a `GramRule` weighs: n kept gradients in blocks, one simplex per block.

    stack: name → [n, *p], the kept gradients, block after block (this rank's, averaged over
        ranks by the engine); or None where the rule never forms them and gives instead
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

    A subclass defines `gradients` (which vectors, in which blocks: the engine's K and α ↦ d,
    `Engine.gramian`, or the vectors themselves) and `weigh` (α from K, with its KKT residual in
    a `MinNormResult`); ``normalize=True`` returns d/‖d‖. The rest of the template, the checks
    and the certificate are the same.
    """

    normalize: bool = False

    @abstractmethod
    def gradients(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        """The vectors to weigh, in blocks."""

    @abstractmethod
    def weigh(self, gram_matrix: Tensor, sizes: list[int]) -> MinNormResult:
        """Weights α [n] (on the product of the blocks' simplices) from K [n, n]."""

    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        vectors = self.gradients(engine, params, batch, candidates)
        direction: Callable[[Tensor], dict[str, Tensor]]  # α ↦ d = Σ α_i g_i
        if vectors.stack is not None:  # the vectors themselves: averaged over ranks, then K
            k, direction = engine.gram(vectors.stack, candidates.batch_size, repr(self))
        else:  # the engine formed K and forms d by its own means
            assert vectors.gram is not None and vectors.direction is not None
            k, direction = vectors.gram, vectors.direction
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
            Minkowski sum of the per-example hulls; a QP over a product of B simplices (the
            engine forms its m·B per-example Gramian: `Engine(gramian=...)`).
        tolerance: keep only ε-maximizers: candidates whose value is within τ of the best (per
            restart mean at batch level, per example otherwise). None keeps all. A
            `minimax.ShrinkingTolerance` makes τ shrink as ‖d‖ does (ε-steepest descent): DDi
            reads its ``value`` and updates it with ‖d‖ after each direction; its τ is the rule's
            state (`state_dict`).
        normalize: return d / ‖d‖ (the norm field keeps ‖d‖ before normalizing).
        method: the min-norm solver that weighs K, a name in `minimax.minnorm.METHODS` (batch
            level; per example the product-of-simplices solver).

    How K and d are formed (layerwise or materialized, through the scoring graph or not, the
    memory budget, data parallelism) is the engine's choice (`minimax.engine.Engine`).
    Per-example DDi and the batch-level layerwise Gramian are not data-parallel.
    """

    data_parallel = True

    def __init__(
        self,
        *,
        per_example: bool = False,
        tolerance: float | ShrinkingTolerance | None = None,
        normalize: bool = False,
        method: str = "wolfe",
    ) -> None:
        if tolerance is not None and not isinstance(tolerance, ShrinkingTolerance):
            tolerance = checks.real_number("tolerance", tolerance, nonnegative=True)
        self.per_example = per_example
        self.tolerance = tolerance
        self.normalize = normalize
        self.method = method
        # per-example rows need their own forward: no scoring graph there
        self.need = "none" if per_example else "all"

    def __repr__(self) -> str:
        opts = [f"per_example={self.per_example}"]
        if isinstance(self.tolerance, ShrinkingTolerance):
            opts.append(f"tolerance={self.tolerance!r}")
        elif self.tolerance is not None:
            opts.append(f"tolerance={self.tolerance:g}")
        if self.normalize:
            opts.append("normalize=True")
        if self.method != "wolfe":
            opts.append(f"method={self.method!r}")
        return f"DDi({', '.join(opts)})"

    @property
    def tau(self) -> float | None:
        """The tolerance in force now (a `ShrinkingTolerance`'s current value), or None."""
        if isinstance(self.tolerance, ShrinkingTolerance):
            return self.tolerance.value
        return self.tolerance

    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        direction = super().direction(engine, params, batch, candidates)
        if isinstance(self.tolerance, ShrinkingTolerance):
            direction.extras["tolerance"] = torch.tensor(self.tolerance.value, dtype=torch.float64)
            norm = float(direction.norm)
            if math.isfinite(norm):  # a non-finite d is refused downstream
                self.tolerance.update(norm)
        return direction

    def state_dict(self) -> dict[str, Any]:
        """A `ShrinkingTolerance`'s current τ (empty for a fixed tolerance)."""
        if isinstance(self.tolerance, ShrinkingTolerance):
            return {"tolerance": self.tolerance.state_dict()}
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(self.tolerance, ShrinkingTolerance):
            super().load_state_dict(state)
            return
        if not isinstance(state, Mapping):
            raise TypeError(f"{self!r}: a rule's state must be a dict, got {type(state).__name__}")
        if set(state) != {"tolerance"}:
            raise ValueError(
                f"{self!r}: expected a state with key 'tolerance', got keys {sorted(state)}"
            )
        self.tolerance.load_state_dict(state["tolerance"])

    def weigh(
        self, gram_matrix: Tensor, sizes: list[int], precision: torch.dtype | None = None
    ) -> MinNormResult:
        if self.per_example:
            return min_norm_product_weights(gram_matrix, sizes, precision=precision)
        return min_norm_weights(gram_matrix, method=self.method, precision=precision)

    def gradients(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        if self.per_example:
            return self._per_example(engine, params, batch, candidates)
        keep = torch.ones(candidates.m, dtype=torch.bool)
        tau = self.tau
        if tau is not None:
            means = engine.batch_means(candidates.values)
            keep = (means >= means.max() - tau).cpu()
        k, direction = engine.gramian(
            params, batch, candidates.deltas, keep, per_example=False, what=repr(self)
        )
        return GramVectors(
            None, [int(keep.sum())], keep, gram=k, direction=direction, precision=_dtype(params)
        )

    def _per_example(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> GramVectors:
        problem = engine.problem
        if problem.examples_coupled:
            raise ValueError(
                "DDi(per_example=True) needs a batch objective that is a sum of per-example "
                "maxima, "
                f"but in {problem!r} the examples are coupled (train-mode BatchNorm statistics): "
                "use DDi(per_example=False), ModuleProblem(..., batchnorm='eval'), or a model "
                "without BatchNorm (e.g. GroupNorm)"
            )
        values = candidates.values.T  # [B, m]; blocks are examples
        tau = self.tau
        if tau is not None:  # keep each example's ε-maximizers
            mask = values >= values.max(dim=1, keepdim=True).values - tau
        else:
            mask = torch.ones_like(values, dtype=torch.bool)
        sizes = [int(s) for s in mask.sum(dim=1).tolist()]
        k, direction = engine.gramian(
            params, batch, candidates.deltas, mask, per_example=True, what=repr(self)
        )
        return GramVectors(None, sizes, mask, gram=k, direction=direction, precision=_dtype(params))


def _dtype(params: Mapping[str, Tensor]) -> torch.dtype:
    """The dtype θ's gradients (and so the entries of their Gram matrix) carry rounding of."""
    return next(iter(params.values())).dtype


RULES: Registry[Rule] = Registry("rule")
RULES.add("danskin", Danskin, aliases=("pgd",))
RULES.add("maxloss", MaxLoss)
RULES.add("ddi", DDi)


def _ddi_per_example(**kwargs: Any) -> Rule:
    """DDi over the exact Danskin set of the batch loss (a product of per-example simplices)."""
    return DDi(per_example=True, **kwargs)


RULES.add("ddi-example", _ddi_per_example)
