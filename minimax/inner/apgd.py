"""Auto-PGD (APGD): projected gradient ascent with momentum and a self-tuning step size.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (arXiv:2003.01690): the first two attacks of AutoAttack,
APGD-CE (``loss="ce"``) and APGD-DLR (``loss="dlr"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Literal

import torch
from torch import Generator, Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.base import Candidates, InnerSolver
from minimax.inner.early_stop import ActiveRows, EarlyStop, Stall
from minimax.problem import Batch, Params
from minimax.sets import L2Ball, LinfBall

__all__ = ["APGD", "apgd_checkpoints", "dlr_loss"]


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size, for a budget of ``steps``.

    ``w_j = ⌈p_j · steps⌉`` with ``p_0 = 0``, ``p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``; returns the distinct ``w_j`` in
    ``(0, steps]`` in increasing order (for 100 steps: 22, 41, 57, 70, 80, 87, 93, 99).
    """
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(round(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06), 10))
    ws = {math.ceil(round(q * steps, 8)) for q in p}
    return sorted(w for w in ws if 0 < w <= steps)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference-of-logits-ratio loss, per row: ``−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)``.

    ``z = logits`` ``[..., C]`` (C ≥ 3), ``π`` the logits sorted in decreasing order, ``y``
    integer labels broadcastable to ``logits.shape[:-1]``. Returns ``[...]``. Invariant to a shift
    and to a positive rescaling of the logits (up to the 1e-12); positive iff ``y`` is
    misclassified.
    """
    if logits.ndim < 1 or logits.shape[-1] < 3:
        raise ValueError(
            "the DLR loss needs at least 3 classes (it divides by z_π1 − z_π3), got logits of "
            f"shape {tuple(logits.shape)}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    y = y.to(logits.device).expand(logits.shape[:-1])
    top = logits.sort(dim=-1, descending=True).values
    z_y = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    is_y = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, y.unsqueeze(-1), True)
    z_other = torch.where(is_y, torch.full_like(logits, -torch.inf), logits).amax(dim=-1)
    return -(z_y - z_other) / (top[..., 0] - top[..., 2] + 1e-12)


def _dlr_of_logits(outputs: Tensor, y: Tensor) -> Tensor:
    """`dlr_loss` as a per-example loss over a model's outputs, which must be logits [B, C]."""
    if outputs.ndim != 2:
        raise ValueError(
            "loss='dlr' needs the model to return class logits [B, C], got outputs of shape "
            f"{tuple(outputs.shape)}"
        )
    return dlr_loss(outputs, y)


class APGD(InnerSolver):
    """Auto-PGD (Croce & Hein 2020) with m restarts, for `LinfBall` and `L2Ball`.

    Every candidate (restart × example) runs its own copy of the schedule, all vectorized over
    the ``[m, B]`` candidates. With ``f`` the surrogate loss, ``P`` the projection onto the set (and
    the bounds on x + δ) and ``d(·)`` the set's unit steepest-ascent direction (``sign`` for L∞,
    the normalized gradient for L2)::

        η⁰ = 2ε                                  (per example when ε is a [B] tensor)
        x¹ = P(x⁰ + η⁰ d(∇f(x⁰)))
        z^{k+1} = P(x^k + η^k d(∇f(x^k)))
        x^{k+1} = P(x^k + α (z^{k+1} − x^k) + (1 − α)(x^k − x^{k−1}))        (k ≥ 1)

    At the checkpoints ``w_j = ⌈p_j · steps⌉`` (``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``, see `apgd_checkpoints`) the step size
    of a candidate is halved when

    1. fewer than ``ρ · (w_j − w_{j−1})`` of the iterations since ``w_{j−1}`` increased f, or
    2. its step size was not halved at ``w_{j−1}`` and its best loss has not increased since;

    a candidate whose step is halved restarts from its best point so far (with the gradient
    stored there, and no momentum on the next step).

    Each restart returns its best iterate by the surrogate, which is what APGD tracks; the
    candidates' ``values`` are always the problem's own objective g at those iterates. Where the
    examples are coupled (train-mode BatchNorm, `Problem.examples_coupled`) the per-example best
    iterates form a batch that was never evaluated as one, so the returned deltas are re-scored
    by one forward (counted) and ``values`` are g at exactly those deltas.

    Args:
        steps: iterations. Costs ``steps`` forward+backward passes per restart, plus one forward at
            the last iterate (and one more to score with g when ``loss="dlr"``), like `PGD`.
        restarts: m, the number of candidates per example (independent random starts).
        loss: the surrogate f that drives the ascent. ``"ce"``: the problem's own objective g
            (cross entropy for a default `ModuleProblem`: APGD-CE; any g for a `FunctionProblem`).
            ``"dlr"``: the DLR loss of the class logits (APGD-DLR; `ModuleProblem` only, ≥ 3
            classes, integer labels y [B]); see `dlr_loss`.
        rho: ρ, the fraction of successful iterations below which the step size is halved.
        alpha: α, the weight of the new point (1 − α is the momentum); α = 1 disables momentum.
        seed: seeds the solver's own `torch.Generator` (used unless a generator is passed).
        random_start: start each restart at a random point of the set (else at δ = 0).
        stop: early stopping (`minimax.inner.early_stop.EarlyStop`; None: every candidate runs
            all ``steps``). A candidate stops once its best f has not increased for
            ``stop.patience`` iterations, or, on a classifier whose examples are independent,
            once an iterate is misclassified (that iterate is then its result: ``values`` are g
            there). Only the examples with a running candidate are evaluated.
    """

    def __init__(
        self,
        steps: int = 100,
        restarts: int = 1,
        *,
        loss: Literal["ce", "dlr"] = "ce",
        rho: float = 0.75,
        alpha: float = 0.75,
        seed: int | None = 0,
        random_start: bool = True,
        stop: EarlyStop | None = None,
    ) -> None:
        super().__init__(restarts=restarts, random_start=random_start, seed=seed)
        if stop is not None and not isinstance(stop, EarlyStop):
            raise TypeError(f"stop must be an EarlyStop or None, got {type(stop).__name__}")
        self.stop = stop
        self.fooled_when_positive = False  # set by APGD-T: f > 0 means misclassified
        self.steps = checks.integer("steps", steps, minimum=0)
        if loss not in ("ce", "dlr"):
            raise ValueError(
                f"loss must be 'ce' (the problem's own objective) or 'dlr' (difference of logits "
                f"ratio), got {loss!r}"
            )
        rho = checks.real_number("rho", rho, nonnegative=True, at_most=1.0)
        alpha = checks.real_number("alpha", alpha, at_most=1.0)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1] (1 = no momentum), got {alpha!r}")
        self.loss = loss
        self.rho = float(rho)
        self.alpha = float(alpha)

    def __repr__(self) -> str:
        return (
            f"APGD(steps={self.steps}, restarts={self.restarts}, loss={self.loss!r}, "
            f"rho={self.rho:g}, alpha={self.alpha:g}, random_start={self.random_start})"
        )

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: Generator | None
    ) -> Candidates:
        problem = engine.problem
        S = problem.perturbation
        if not isinstance(S, (LinfBall, L2Ball)):
            raise ValueError(
                f"APGD supports LinfBall and L2Ball (it scales its step size by the radius ε); "
                f"got {S!r}: use PGD for other sets"
            )
        surrogate = self._surrogate(engine, batch)
        start = self.initial(problem, batch, generator)
        fooled = None
        if self.stop is not None and surrogate.rows_independent:
            surrogate, fooled = self._watched(surrogate)
        best_d, best_f = self._ascend(surrogate, params, batch, start, fooled)
        if self.loss == "ce" and not problem.examples_coupled and fooled is None:
            values = best_f  # the surrogate is g itself
        else:
            with torch.no_grad():
                values = engine.values(params, best_d, batch)
        return Candidates(best_d.detach(), values.detach())

    # -- the surrogate loss f, as an engine over the same δ ------------------------------------
    def _surrogate(self, engine: Engine, batch: Batch) -> Engine:
        """The engine whose values f the ascent maximizes: g itself ("ce"), or the DLR loss of
        the same classifier's logits ("dlr", through `Engine.with_loss`)."""
        if self.loss == "ce":
            return engine
        # Each candidate's own forward where BatchNorm uses batch statistics, else one stacked
        # forward over all candidates.
        try:
            surrogate = engine.with_loss(
                _dlr_of_logits, stacking="vmap" if engine.problem.examples_coupled else "stack"
            )
        except TypeError as err:
            raise ValueError(
                f"loss='dlr' needs class logits and labels, which only a ModuleProblem provides "
                f"(got {type(engine.problem).__name__}); use loss='ce' to ascend the problem's "
                "own objective"
            ) from err
        y = batch[1]
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or y.ndim != 1:
            raise ValueError(
                f"loss='dlr' needs integer class labels y of shape [B], got dtype {y.dtype} and "
                f"shape {tuple(y.shape)}"
            )
        return surrogate

    def _watched(self, surrogate: Engine) -> tuple[Engine, Callable[[Tensor], Tensor]]:
        """The surrogate and ``fooled(f) -> bool`` per candidate of its last evaluation: f > 0
        where that means misclassified (DLR, targeted DLR), else the argmax of the logits the
        loss saw (recorded by a wrapper of the same loss)."""
        if self.loss == "dlr" or self.fooled_when_positive:
            return surrogate, lambda f: f > 0
        problem = surrogate.problem
        seen: list[Tensor] = []
        own = problem.loss_fn  # type: ignore[attr-defined]

        def loss(logits: Tensor, y: Tensor) -> Tensor:
            if logits.ndim == 2 and not y.is_floating_point():
                seen.append(logits.detach().argmax(-1) != y)
            return own(logits, y)

        def fooled(f: Tensor) -> Tensor:
            wrong = (
                torch.cat(seen).reshape(f.shape) if seen else torch.zeros_like(f, dtype=torch.bool)
            )
            seen.clear()
            return wrong

        stacking = "loop" if surrogate.stacking == "vmap" else surrogate.stacking
        return surrogate.with_loss(loss, stacking=stacking), fooled

    # -- the schedule --------------------------------------------------------------------------
    # APGD's schedule (momentum step, success counting, checkpoint halving with restart from the
    # best point) reads as one loop against the paper's Algorithm 1.
    # long: one loop, as in the paper's Algorithm 1.
    def _ascend(
        self,
        surrogate: Engine,
        params: Mapping[str, Tensor],
        batch: Batch,
        deltas: Tensor,
        fooled: Callable[[Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run APGD from deltas [n, B, *event]; returns each candidate's best iterate and its f.
        With ``fooled`` (early stopping), stopped candidates are frozen and not evaluated."""
        S = surrogate.problem.perturbation
        assert isinstance(S, (LinfBall, L2Ball))
        x = surrogate.problem.clean_input(batch)
        e = deltas.ndim - 2
        n, b = deltas.shape[:2]

        def lift(t: Tensor) -> Tensor:  # [n, B] → [n, B, 1, ..., 1]
            return t.reshape(n, b, *([1] * e))

        watch = None if fooled is None else _Watch(surrogate, params, batch, self.stop, fooled)

        def evaluate(d: Tensor, need_grad: bool) -> tuple[Tensor, Tensor | None]:
            if watch is not None:
                return watch.evaluate(d, need_grad)
            if not need_grad:
                with torch.no_grad():
                    return surrogate.values(params, d, batch).detach(), None
            return surrogate.values_and_input_grad(params, d, batch)

        def project(d: Tensor) -> Tensor:
            return S.project(d, x, event_ndim=e)

        K = self.steps
        x_cur = deltas.detach()
        f_cur, g_cur = evaluate(x_cur, need_grad=K > 0)
        if g_cur is None:
            return x_cur, f_cur
        eps = torch.as_tensor(S.eps, dtype=deltas.dtype, device=deltas.device)
        eta = (2 * eps).expand(n, b).clone()
        checkpoints = set(apgd_checkpoints(K))

        x_prev = x_cur
        x_best, f_best, g_best = x_cur, f_cur, g_cur
        if watch is not None:  # an example misclassified at the start is done
            x_best, f_best = watch.settle(x_cur, f_cur, x_best, f_best, f_cur > f_cur)
        successes = torch.zeros(n, b, dtype=torch.long, device=deltas.device)
        f_best_last = f_best
        reduced_last = torch.zeros(n, b, dtype=torch.bool, device=deltas.device)
        last_w = 0
        for t in range(1, K + 1):
            if watch is not None and watch.finished:
                break
            direction = S.ascent_step(torch.zeros_like(g_cur), g_cur, 1.0, event_ndim=e)
            z = project(x_cur + lift(eta) * direction)
            a = self.alpha if t > 1 else 1.0
            x_new = project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev))
            if watch is not None:  # stopped candidates stay where they are
                x_new = torch.where(lift(watch.active), x_new, x_cur)
                watch.previous = (f_cur, g_cur)
            f_new, g_new = evaluate(x_new, need_grad=t < K)

            successes += (f_new > f_cur).long()
            improved = f_new > f_best
            x_best = torch.where(lift(improved), x_new, x_best)
            f_best = torch.where(improved, f_new, f_best)
            if watch is not None:
                x_best, f_best = watch.settle(x_new, f_new, x_best, f_best, improved)
            x_prev, x_cur, f_cur = x_cur, x_new, f_new
            if g_new is None:
                break  # the last iterate: no further step
            g_best = torch.where(lift(improved), g_new, g_best)
            g_cur = g_new

            if t in checkpoints:
                cond1 = successes.to(f_cur.dtype) < self.rho * (t - last_w)
                cond2 = ~reduced_last & (f_best <= f_best_last)
                reduce = cond1 | cond2
                eta = torch.where(reduce, eta / 2, eta)
                back = lift(reduce)
                x_cur = torch.where(back, x_best, x_cur)
                x_prev = torch.where(back, x_best, x_prev)  # no momentum after a restart
                g_cur = torch.where(back, g_best, g_cur)
                f_cur = torch.where(reduce, f_best, f_cur)
                reduced_last, f_best_last, last_w = reduce, f_best, t
                successes = torch.zeros_like(successes)
        return x_best, f_best


class _Watch:
    """APGD's early stopping (`EarlyStop`): which candidates [n, B] still run, evaluating only
    the examples with a running candidate; stopped ones keep their f and gradient."""

    def __init__(
        self,
        surrogate: Engine,
        params: Mapping[str, Tensor],
        batch: Batch,
        stop: EarlyStop | None,
        fooled: Callable[[Tensor], Tensor],
    ) -> None:
        self.surrogate, self.params, self.fooled = surrogate, params, fooled
        self.rows = ActiveRows(batch)
        self.patience = None if stop is None else stop.patience
        self.active = torch.ones(0, dtype=torch.bool)
        self.stall: Stall | None = None
        self.previous: tuple[Tensor, Tensor | None] | None = None

    @property
    def finished(self) -> bool:
        return not bool(self.active.any())

    def evaluate(self, d: Tensor, need_grad: bool) -> tuple[Tensor, Tensor | None]:
        """f (and ∇f) at d [n, B, ...]: the running examples' by one evaluation of their rows,
        the others' as they were; records which running candidates are misclassified."""
        rows, sub = self.rows.rows, self.rows.batch
        d_r = d if self.rows.everything else d[:, rows]
        if need_grad:
            f_r, g_r = self.surrogate.values_and_input_grad(self.params, d_r, sub)
        else:
            with torch.no_grad():
                f_r, g_r = self.surrogate.values(self.params, d_r, sub).detach(), None
        self.wrong = torch.zeros(d.shape[:2], dtype=torch.bool, device=d.device)
        self.wrong[:, rows] = self.fooled(f_r)
        if self.rows.everything or self.previous is None:
            return f_r, g_r
        f = self.previous[0].clone()
        f[:, rows] = f_r
        if g_r is None or self.previous[1] is None:
            return f, None
        g = self.previous[1].clone()
        g[:, rows] = g_r
        return f, g

    def settle(
        self, x_new: Tensor, f_new: Tensor, x_best: Tensor, f_best: Tensor, improved: Tensor
    ) -> tuple[Tensor, Tensor]:
        """A misclassified running candidate takes its iterate as its result and stops; one
        whose best f has stalled stops; returns the updated (x_best, f_best)."""
        if self.stall is None:
            self.active = torch.ones_like(f_new, dtype=torch.bool)
            self.stall = Stall(f_new, self.patience)
        wrong = self.wrong & self.active
        lifted = wrong.reshape(*wrong.shape, *([1] * (x_new.ndim - 2)))
        x_best = torch.where(lifted, x_new, x_best)
        f_best = torch.where(wrong, f_new, f_best)
        self.active &= ~(wrong | self.stall.update(improved))
        self.rows.update(self.active.any(dim=0))
        return x_best, f_best
