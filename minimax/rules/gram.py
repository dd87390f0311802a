"""The Gram-rule template: gradients → K (float64) → weights α → d = Σ α_i g_i → certificate.

Public API::

    GramVectors(stack, sizes, layout, gram=None, direction=None, precision=None)
    GramRule: define gradients(engine, params, batch, candidates) -> GramVectors and
        weigh(K, sizes) -> MinNormResult; direction(...) runs the rest of the template
    block_certificate(k_alpha, sizes) -> Σ_blocks max_i ⟨−d, g_i⟩ (float64 scalar)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from minimax.engine import Engine
from minimax.inner.base import Candidates
from minimax.minnorm import MinNormResult
from minimax.problem import Batch
from minimax.rules.base import Direction, Rule, normalized

__all__ = ["GramRule", "GramVectors", "block_certificate"]


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
        d, norm, cert = normalized(d, raw, self.normalize, scale)
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
