"""Outer descent-direction rules: candidates → a `Direction` d (the optimizer descends along −d).

Every rule sees the problem, θ, the batch and the inner solver's `Candidates`, and knows nothing
of how the candidates were found.

- `Danskin`: the gradient at the best candidate (PGD adversarial training's rule).
- `MaxLoss`: the gradient at each example's worst restart (the equal-compute baseline).
- `DDi`: the minimum-norm element of the hull of the candidate gradients (Danskin's Descent
  Direction), batch-level or per example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from minimax.gradients import (
    batch_gradient,
    candidate_gradients,
    combine,
    flat_norm,
    gram,
    inner_products,
    per_example_gradients,
)
from minimax.gramian import METHODS as GRAMIAN_METHODS
from minimax.gramian import check_direction, per_example_gram, resolve_method, weighted_gradient
from minimax.inner.base import Candidates
from minimax.minnorm import MinNormResult, min_norm_product_weights, min_norm_weights
from minimax.problem import Batch, Problem

__all__ = ["DDi", "Danskin", "Direction", "MaxLoss", "Rule"]


@dataclass
class Direction:
    """An outer direction d; the step is θ ← θ − η d.

    vector: d, a dict shaped like θ.
    weights: float64 weights of the candidate gradients that make d: [m] (batch-level) or [B, m]
        (per example); entries of dropped candidates are 0.
    norm: ‖d‖ (float64 scalar), the stationarity measure.
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
    """A descent-direction rule: ``rule(problem, params, batch, candidates) -> Direction``."""

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
    d: dict[str, Tensor], cert: Tensor | None, normalize: bool, norm: Tensor | None = None
) -> tuple[dict[str, Tensor], Tensor, Tensor | None]:
    """(d or d/‖d‖, ‖d‖, certificate rescaled alike); ``norm`` defaults to ‖d‖ computed here."""
    norm = flat_norm(d) if norm is None else norm
    if normalize and float(norm) > 0:
        d = {k: v / norm.to(v.dtype) for k, v in d.items()}
        cert = None if cert is None else cert / norm
    return d, norm, cert


def _max_certificate(
    problem: Problem,
    params: Mapping[str, Tensor],
    batch: Batch,
    candidates: Candidates,
    vector: Mapping[str, Tensor],
) -> Tensor:
    grads = candidate_gradients(problem, params, batch, candidates.deltas)
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

    def __call__(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        best = int(candidates.values.mean(dim=1).argmax())
        d = batch_gradient(problem, params, batch, candidates.deltas[best])
        cert = _max_certificate(problem, params, batch, candidates, d) if self.certify else None
        d, norm, cert = _normalized(d, cert, self.normalize)
        return Direction(d, _one_hot(torch.tensor(best), candidates.m), norm, cert, rule=repr(self))


class MaxLoss(_SingleGradient):
    """d = ∇_θ mean_b g(θ, δ*_b) with δ*_b each example's best restart (PGD with restarts).

    ``certify=True`` also reports Σ_b max_i ⟨−d, g_{b,i}⟩ from per-example gradients (costly);
    ``normalize=True`` returns d/‖d‖ (``norm`` keeps ‖d‖).
    """

    def __call__(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        d = batch_gradient(problem, params, batch, candidates.best_deltas())
        cert = None
        if self.certify:
            grads = per_example_gradients(problem, params, batch, candidates.deltas)
            cert = (-inner_products(grads, d, lead=2)).reshape(candidates.m, -1).max(0).values.sum()
        weights = _one_hot(candidates.best_index(), candidates.m)
        d, norm, cert = _normalized(d, cert, self.normalize)
        return Direction(d, weights, norm, cert, rule=repr(self))


class DDi(Rule):
    """Danskin's Descent Direction: the min-norm element of the hull of candidate gradients.

    Args:
        per_example: ``False`` (default): one weight per restart, the hull of the m batch-mean
            gradients (as in the paper). ``True``: the exact Danskin set of the batch loss, the
            Minkowski sum of the per-example hulls; a QP over a product of B simplices (see
            ``gramian`` for how its m·B per-example Gramian is formed).
        tolerance: keep only ε-maximizers: candidates whose value is within τ of the best (per
            restart mean at batch level, per example otherwise). None keeps all.
        normalize: return d / ‖d‖ (the norm field keeps ‖d‖ before normalizing).
        method: the min-norm solver (see `minimax.min_norm_weights`).
        memory_budget: bytes the materialized per-example gradients may take before an error
            suggests ``per_example=False`` (the layerwise Gramian never forms them).
        gramian: how the Gram matrix and d are formed (`minimax.gramian`). ``"layerwise"``: the
            Gramian layer by layer from one forward + backward over the m·B candidate rows, and d
            by one weighted backward, never holding m·B (per example) or m (batch-level) full
            gradients. ``"materialized"``: the gradients themselves (the reference). ``"auto"``
            (default): layerwise per example when every parameterised module has a layer rule;
            materialized at batch level, where it measured faster (benchmarks/per_example.py).
    """

    def __init__(
        self,
        *,
        per_example: bool = False,
        tolerance: float | None = None,
        normalize: bool = False,
        method: str = "wolfe",
        memory_budget: int = 2 * 1024**3,
        gramian: str = "auto",
    ) -> None:
        if tolerance is not None and not tolerance >= 0:
            raise ValueError(f"tolerance must be ≥ 0 or None, got {tolerance!r}")
        self.per_example = per_example
        self.tolerance = tolerance
        self.normalize = normalize
        self.method = method
        self.memory_budget = memory_budget
        if gramian not in GRAMIAN_METHODS:
            raise ValueError(
                f"gramian must be one of {', '.join(GRAMIAN_METHODS)}, got {gramian!r}"
            )
        self.gramian = gramian

    def __repr__(self) -> str:
        opts = [f"per_example={self.per_example}"]
        if self.tolerance is not None:
            opts.append(f"tolerance={self.tolerance:g}")
        if self.normalize:
            opts.append("normalize=True")
        if self.method != "wolfe":
            opts.append(f"method={self.method!r}")
        if self.gramian != "auto":
            opts.append(f"gramian={self.gramian!r}")
        return f"DDi({', '.join(opts)})"

    def __call__(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        if self.per_example:
            return self._per_example(problem, params, batch, candidates)
        return self._batch(problem, params, batch, candidates)

    def _batch(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        m = candidates.m
        keep = torch.arange(m)
        if self.tolerance is not None:
            means = candidates.values.mean(dim=1)
            keep = torch.nonzero(means >= means.max() - self.tolerance).flatten().cpu()
        if self.gramian == "layerwise":
            k, result, d = self._batch_layerwise(problem, params, batch, candidates.deltas[keep])
        else:
            grads = candidate_gradients(problem, params, batch, candidates.deltas[keep])
            k = gram(grads)
            result = min_norm_weights(k, method=self.method)
            d = combine(grads, result.weights)
        alpha = result.weights
        kalpha = k @ alpha
        cert = -kalpha.min()
        d, norm, certificate = _normalized(
            d, cert, self.normalize, result.sq_norm.clamp_min(0).sqrt()
        )
        weights = torch.zeros(m, dtype=torch.float64, device=alpha.device)
        weights[keep.to(alpha.device)] = alpha
        return Direction(
            d, weights, norm, certificate, result.kkt, rule=repr(self), extras={"gram": k}
        )

    def _per_example(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        m, b = candidates.m, candidates.batch_size
        if problem.examples_coupled:
            raise ValueError(
                "DDi(per_example=True) needs a batch objective that is a sum of per-example "
                "maxima, "
                f"but in {problem!r} the examples are coupled (train-mode BatchNorm statistics): "
                "use DDi(per_example=False), ModuleProblem(..., batchnorm='eval'), or a model "
                "without BatchNorm (e.g. GroupNorm)"
            )
        values = candidates.values.T  # [B, m]; blocks are examples
        if self.tolerance is not None:
            mask = values >= values.max(dim=1, keepdim=True).values - self.tolerance
        else:
            mask = torch.ones_like(values, dtype=torch.bool)
        flat_mask = mask.reshape(-1)
        sizes = [int(s) for s in mask.sum(dim=1).tolist()]
        if resolve_method(self.gramian, problem, params) == "layerwise":
            k = per_example_gram(problem, params, batch, candidates.deltas, mask, "layerwise")
            result = min_norm_product_weights(k, sizes)
            alpha = result.weights
            full = torch.zeros(b * m, dtype=torch.float64, device=alpha.device)
            full[flat_mask.to(alpha.device)] = alpha
            d = weighted_gradient(problem, params, batch, candidates.deltas, full.reshape(b, m).T)
            check_direction(k, alpha, d, repr(self))
        else:
            k, result, d = self._per_example_materialized(
                problem, params, batch, candidates, flat_mask, sizes
            )
            alpha = result.weights
        kalpha = k @ alpha
        # Σ_b max_i ⟨−d, g_{b,i}⟩ = −Σ_b min_{i ∈ block b} (Kα)_i
        starts = torch.tensor([0, *sizes[:-1]]).cumsum(0).tolist()
        cert = -sum(kalpha[s : s + n].min() for s, n in zip(starts, sizes))
        cert = torch.as_tensor(cert, dtype=torch.float64)
        d, norm, certificate = _normalized(
            d, cert, self.normalize, result.sq_norm.clamp_min(0).sqrt()
        )
        weights = torch.zeros(b * m, dtype=torch.float64, device=alpha.device)
        weights[flat_mask.to(alpha.device)] = alpha
        return Direction(
            d,
            weights.reshape(b, m),
            norm,
            certificate,
            result.kkt,
            rule=repr(self),
            extras={"gram": k},
        )

    def _batch_layerwise(
        self, problem: Problem, params: Mapping[str, Tensor], batch: Batch, deltas: Tensor
    ) -> tuple[Tensor, MinNormResult, dict[str, Tensor]]:
        """K_ij = Σ_{b,b'} ⟨r_{b,i}, r_{b',j}⟩ from the per-example Gramian, d by one backward."""
        m, b = deltas.shape[:2]
        k_rows = per_example_gram(problem, params, batch, deltas, None, "layerwise")
        blocks = k_rows.reshape(b, m, b, m)  # rows ordered (example, candidate)
        k = blocks.sum(dim=(0, 2))
        result = min_norm_weights(k, method=self.method)
        weights = result.weights.to(deltas.device).unsqueeze(1).expand(m, b)
        d = weighted_gradient(problem, params, batch, deltas, weights)
        check_direction(k, result.weights, d, repr(self))
        return k, result, d

    def _per_example_materialized(
        self,
        problem: Problem,
        params: Mapping[str, Tensor],
        batch: Batch,
        candidates: Candidates,
        flat_mask: Tensor,
        sizes: list[int],
    ) -> tuple[Tensor, MinNormResult, dict[str, Tensor]]:
        """The reference: m·B per-example gradients in memory, K = G Gᵀ, d = αᵀG."""
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
        # Blocks are examples: reorder to [B, m, *p] and keep each example's ε-maximizers.
        kept = {
            k: v.transpose(0, 1).reshape(b * m, *v.shape[2:])[flat_mask] for k, v in grads.items()
        }
        k = gram(kept)
        result = min_norm_product_weights(k, sizes)
        return k, result, combine(kept, result.weights)
