"""The single-gradient rules: one batch gradient each.

Public API::

    Danskin(*, certify=False, normalize=False)   the gradient at the best restart
    MaxLoss(*, certify=False, normalize=False)   the gradient at each example's worst restart
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from minimax.engine import Engine
from minimax.engine.gradients import inner_products
from minimax.inner.base import Candidates
from minimax.problem import Batch
from minimax.rules.base import Direction, Rule, normalized, one_hot

__all__ = ["Danskin", "MaxLoss"]


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
        d, norm, cert = normalized(d, cert, self.normalize)
        weights = one_hot(torch.tensor(best), candidates.m)
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
        weights = one_hot(candidates.best_index(), candidates.m)
        d, norm, cert = normalized(d, cert, self.normalize)
        return Direction(vector=d, weights=weights, norm=norm, certificate=cert, rule=repr(self))
