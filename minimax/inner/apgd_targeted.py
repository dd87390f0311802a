"""APGD-T: Auto-PGD on the targeted DLR loss, one run per target class (the top-9 classes).

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (arXiv:2003.01690): the second attack of AutoAttack's
"standard" suite. It composes `APGD` through its public interface: each target's run is plain
APGD (the same schedule) on a `ModuleProblem` of the same classifier whose loss is the targeted
DLR loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.apgd import APGD
from minimax.inner.base import Candidates, InnerSolver, rows_of_set
from minimax.inner.early_stop import EarlyStop
from minimax.problem import Batch, Params, Problem
from minimax.sets import L2Ball, LinfBall

__all__ = ["APGDTargeted", "targeted_dlr_loss"]


def targeted_dlr_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR loss per row: ``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12)``.

    ``logits`` [..., C] (C ≥ 4), ``y`` and ``target`` integer labels [...], ``π`` the logits
    sorted in decreasing order. Returns [...]; positive iff z_t > z_y. Invariant to a shift and a
    positive rescaling of the logits (up to the 1e-12).
    """
    if logits.ndim < 1 or logits.shape[-1] < 4:
        raise ValueError(
            "the targeted DLR loss needs at least 4 classes (it divides by z_π1 − (z_π3 + z_π4)/2)"
            f", got logits of shape {tuple(logits.shape)}"
        )
    top = logits.sort(dim=-1, descending=True).values
    z_y = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    z_t = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return -(z_y - z_t) / (top[..., 0] - 0.5 * (top[..., 2] + top[..., 3]) + 1e-12)


def _encoded_loss(classes: int) -> Callable[[Tensor, Tensor], Tensor]:
    """``loss_fn(logits, code)`` for labels encoded as ``code = y·C + target`` (so that the
    target travels with y through every stacking mode of `ModuleProblem`)."""

    def loss(logits: Tensor, code: Tensor) -> Tensor:
        return targeted_dlr_loss(logits, code // classes, code % classes)

    return loss


class APGDTargeted(InnerSolver):
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss towards each of the ``targets``
    classes other than y that the model scores highest at the clean input.

    For target k (k = 1..targets: the k-th highest logit among the classes ≠ y at δ = 0), run
    `APGD` (``steps`` iterations, its published step-size schedule, ``restarts`` random starts)
    maximizing `targeted_dlr_loss` of the same classifier. Every run's result is a candidate, so
    ``m = targets · restarts``; the candidates' ``values`` are the problem's own objective g there.

    With ``early_stop=True`` (AutoAttack's behaviour and cost), an example already misclassified
    by an earlier target's run is not attacked again: its later candidates repeat that
    misclassifying δ.

    Needs a `ModuleProblem` (class logits [B, C], C ≥ 4, integer labels y [B]) over a `LinfBall` or
    an `L2Ball`. Costs about ``targets · restarts · steps`` forward+backward passes (fewer with
    ``early_stop``).

    Args:
        steps: APGD iterations per run (100 in AutoAttack).
        targets: the number of target classes (9 in AutoAttack; capped at C − 1).
        restarts: random starts per target.
        rho, alpha: APGD's ρ and α (see `APGD`).
        seed: seeds the solver's own `torch.Generator` (used unless a generator is passed).
        early_stop: skip examples already misclassified by an earlier target.
        stop: early stopping within each target's run (see `APGD`; None: every run takes all
            ``steps``): a run stops on an example once it is misclassified (the targeted DLR
            loss is positive) or its loss has stalled for ``stop.patience`` iterations.
    """

    def __init__(
        self,
        steps: int = 100,
        targets: int = 9,
        restarts: int = 1,
        *,
        rho: float = 0.75,
        alpha: float = 0.75,
        seed: int | None = 0,
        early_stop: bool = True,
        stop: EarlyStop | None = None,
    ) -> None:
        targets = checks.integer("targets", targets, minimum=1)
        self.apgd = APGD(steps, restarts, loss="ce", rho=rho, alpha=alpha, seed=seed, stop=stop)
        self.apgd.fooled_when_positive = True
        self.targets = int(targets)
        self.early_stop = bool(early_stop)
        super().__init__(restarts=self.targets * self.apgd.restarts, seed=seed)

    @property
    def stop(self) -> EarlyStop | None:
        """Early stopping within each target's run (`APGD.stop`)."""
        return self.apgd.stop

    @stop.setter
    def stop(self, value: EarlyStop | None) -> None:
        self.apgd.stop = value

    def __repr__(self) -> str:
        return (
            f"APGDTargeted(steps={self.apgd.steps}, targets={self.targets}, "
            f"restarts={self.apgd.restarts}, early_stop={self.early_stop})"
        )

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: torch.Generator | None
    ) -> Candidates:
        x, y = self._check(engine.problem, batch)
        params = {k: v.detach() for k, v in params.items()}
        gen = generator or self.generator
        with torch.no_grad():
            clean = engine.logits(params, torch.zeros_like(x).unsqueeze(0), batch)[0]
        classes = int(clean.shape[-1])
        ranked = self._targets(clean, y)
        runs: list[Tensor] = []
        fooled = torch.zeros_like(y, dtype=torch.bool)
        for k in range(ranked.shape[1]):
            rows = torch.nonzero(~fooled | (not self.early_stop)).squeeze(1)
            deltas = self._previous(runs, x)  # [restarts, B, ...]
            if rows.numel() > 0:
                sub = (x[rows], y[rows] * classes + ranked[rows, k])
                targeted = engine.with_loss(
                    _encoded_loss(classes),
                    perturbation=rows_of_set(engine.problem.perturbation, rows, len(y), x.ndim),
                )  # counts on this engine's counter
                found = self.apgd(targeted, params, sub, generator=gen).deltas
                deltas[:, rows] = found
                fooled |= self._misclassified(engine, params, deltas, batch)
            runs.append(deltas)
        stacked = torch.cat(runs)
        with torch.no_grad():
            values = engine.values(params, stacked, batch)
        return Candidates(stacked, values)

    def _check(self, problem: Problem, batch: Batch) -> tuple[Tensor, Tensor]:
        x = problem.clean_input(batch)
        if x is None or not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(
                "APGD-T needs class logits and labels, which only a ModuleProblem provides "
                f"(got {type(problem).__name__}); use APGD for other problems"
            )
        S = problem.perturbation
        if not isinstance(S, (LinfBall, L2Ball)):
            raise ValueError(f"APGD-T supports LinfBall and L2Ball, got {S!r}")
        y = batch[1]
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or y.ndim != 1:
            raise ValueError(
                f"APGD-T needs integer class labels y of shape [B], got dtype {y.dtype} and "
                f"shape {tuple(y.shape)}"
            )
        if problem.examples_coupled:
            raise ValueError(
                "APGD-T attacks examples separately, which train-mode BatchNorm couples: put the "
                "model in eval mode or use ModuleProblem(batchnorm='eval')"
            )
        return x, y

    def _targets(self, logits: Tensor, y: Tensor) -> Tensor:
        """[B, k] the classes ≠ y in decreasing order of their clean logit, k = min(targets,
        C − 1)."""
        if logits.ndim != 2 or logits.shape[1] < 4:
            raise ValueError(
                f"APGD-T needs class logits [B, C ≥ 4], got outputs of shape {tuple(logits.shape)}"
            )
        masked = logits.scatter(1, y.unsqueeze(1), -torch.inf)
        order = masked.argsort(dim=1, descending=True)
        return order[:, : min(self.targets, logits.shape[1] - 1)]

    def _previous(self, runs: list[Tensor], x: Tensor) -> Tensor:
        """The starting content of this target's candidates: the last run's (which keeps the
        δ of examples that are skipped), or zeros."""
        if runs:
            return runs[-1].clone()
        return torch.zeros((self.apgd.restarts, *x.shape), dtype=x.dtype, device=x.device)

    @staticmethod
    def _misclassified(
        engine: Engine, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch
    ) -> Tensor:
        """[B] whether some candidate of deltas [n, B, ...] is misclassified."""
        _, y = batch
        with torch.no_grad():
            wrong = engine.logits(params, deltas, batch).argmax(-1) != y  # [n, B]
        return wrong.any(dim=0)
