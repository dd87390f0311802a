"""FAB-T: the targeted Fast Adaptive Boundary attack (L∞ and L2), AutoAttack's third attack.

Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary attack",
ICML 2020 (arXiv:1907.02044); run as in AutoAttack's "standard" suite (Croce & Hein, ICML 2020,
arXiv:2003.01690). FAB looks for the smallest adversarial perturbation: at each step it linearizes
the decision boundary between the true class y and a target class t, projects both the iterate and
the clean input onto that hyperplane (intersected with the input box) and moves along a convex
combination of the two projections, overshooting by η; once the iterate is misclassified, it keeps
the smallest such point and steps back towards x by β. An example counts as broken only when that
point, checked by a forward, is misclassified, within ε and inside the box.

Budgets, ours (defaults) next to the reference's (AutoAttack ``version="standard"``, ``fab-t``):

=================  =============================  =====================================
                   minimax (`fab_targeted`)       AutoAttack standard (fra31/auto-attack)
=================  =============================  =====================================
iterations         ``steps=100`` per target       ``n_iter=100``
targets            ``targets=9`` (top-9 ≠ y)      ``n_target_classes=9`` (top-9)
restarts           ``restarts=1`` (from x)        ``n_restarts=1`` (from x)
α_max, η, β        0.1, 1.05, 0.9                 ``alpha_max=0.1, eta=1.05, beta=0.9``
random start       restarts > 1: ε/2 sphere       restarts > 1: ε/2 sphere
box                any [lower, upper] (or none)   [0, 1]
=================  =============================  =====================================

torchattacks 3.5.1's ``AutoAttack(version="standard")`` runs its FAB with 10 iterations (its
``FAB(steps=10)`` default), a tenth of the published budget. Cost per target and restart:
``steps`` forward+backward passes (one gradient of z_t − z_y) and ``steps`` forwards (the
misclassification check), on the examples not yet broken.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.inner.base import Candidates, InnerSolver, make_generator
from minimax.inner.early_stop import EarlyStop, Stall
from minimax.inner.hyperplane import hyperplane_projection
from minimax.problem import Batch, Params
from minimax.sets import L2Ball, LinfBall

__all__ = ["FABTargeted", "fab_targeted", "hyperplane_projection"]

Model = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class _Schedule:
    steps: int
    targets: int
    restarts: int
    alpha_max: float
    eta: float
    beta: float
    norm: str
    stop: EarlyStop | None = None


def _norm(d: Tensor, norm: str) -> Tensor:
    """[n] the L∞ or L2 norm of each row of d [n, ...]."""
    flat = d.reshape(d.shape[0], -1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _margin_and_grad(
    model: Model, x: Tensor, delta: Tensor, y: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """f = z_t − z_y at x + δ [n] and its gradient ∂f/∂δ [n, D]: one batched backward (the
    examples are independent, so the gradient of Σ f holds every row's)."""
    rows = torch.arange(x.shape[0], device=x.device)
    with torch.enable_grad():
        d = delta.reshape(x.shape).detach().requires_grad_(True)
        z = model(x + d)
        f = z[rows, t] - z[rows, y]
        (g,) = torch.autograd.grad(f.sum(), d)
    return f.detach(), g.reshape(x.shape[0], -1)


def _fab_run(
    model: Model,
    x: Tensor,
    y: Tensor,
    t: Tensor,
    lo: Tensor,
    hi: Tensor,
    start: Tensor,
    s: _Schedule,
    eps: Tensor | None = None,
) -> Tensor:
    """One FAB run towards targets t [n] from δ = start: the smallest misclassified δ found
    (flat [n, D]; rows never misclassified stay 0). ``lo``, ``hi``: bounds of δ, flat. With
    ``s.stop`` and ``eps`` [n], a row stops once it has a misclassified δ within ε, or once its
    best margin z_t − z_y has not increased for ``s.stop.patience`` steps."""
    n = x.shape[0]
    delta = start.reshape(n, -1).clone()
    best = torch.zeros_like(delta)
    best_size = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    rows = torch.arange(n, device=x.device)
    stall = Stall(best_size, s.stop.patience if s.stop is not None else None)
    top = torch.full_like(best_size, -math.inf)  # the best margin so far
    for _ in range(s.steps):
        r = rows
        i: slice | Tensor = slice(None) if r.numel() == n else r  # every row: views, no gather
        d_r, fooled, size, f = _fab_step(model, x[i], y[i], t[i], lo[i], hi[i], delta[i], s)
        better = fooled & (size < best_size[i])
        best[i] = torch.where(better.unsqueeze(1), d_r, best[i])
        best_size[i] = torch.where(better, size, best_size[i])
        delta[i] = torch.where(fooled.unsqueeze(1), s.beta * d_r, d_r)
        if s.stop is None or eps is None:
            continue
        improved = f > top[i]
        top[i] = torch.maximum(top[i], f)
        done = (best_size[i] <= eps[i]) | stall.update_rows(r, improved)
        if bool(done.any()):
            rows = r[~done]
            if rows.numel() == 0:
                break
    return best


def _fab_step(
    model: Model,
    x: Tensor,
    y: Tensor,
    t: Tensor,
    lo: Tensor,
    hi: Tensor,
    delta: Tensor,
    s: _Schedule,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One FAB step of the rows given: the new δ [n, D], whether it is misclassified [n], its
    size [n] and the margin z_t − z_y at the old δ [n]."""
    n = x.shape[0]
    f, g = _margin_and_grad(model, x, delta, y, t)
    # the boundary's linearization: f + ⟨g, δ' − δ⟩ = 0; project δ and 0 onto it
    r = torch.cat([-f, (g * delta).sum(1) - f])
    d = hyperplane_projection(
        torch.cat([g, g]), r, torch.cat([lo - delta, lo]), torch.cat([hi - delta, hi]), s.norm
    )
    d_iter, d_orig = d[:n], d[n:]
    n_iter = _norm(d_iter, s.norm).clamp_min(1e-8)
    n_orig = _norm(d_orig, s.norm).clamp_min(1e-8)
    alpha = (n_iter / (n_iter + n_orig)).clamp(0, s.alpha_max).unsqueeze(1)
    step = (1 - alpha) * (delta + s.eta * d_iter) + alpha * (s.eta * d_orig)
    delta = torch.minimum(torch.maximum(step, lo), hi)
    with torch.no_grad():
        fooled = model(x + delta.reshape(x.shape)).argmax(1) != y
    return delta, fooled, _norm(delta, s.norm), f


def _start(
    x: Tensor, eps: Tensor, lo: Tensor, hi: Tensor, norm: str, gen: torch.Generator
) -> Tensor:
    """A random start on the sphere of radius ε/2 (the reference's), clipped to the box; flat."""
    shape = (x.shape[0], x[0].numel())
    if norm == "linf":
        u = torch.rand(shape, generator=gen, device=gen.device, dtype=x.dtype) * 2 - 1
    else:
        u = torch.randn(shape, generator=gen, device=gen.device, dtype=x.dtype)
    u = u.to(x.device)
    u = u / _norm(u, norm).clamp_min(1e-12).unsqueeze(1)
    return torch.minimum(torch.maximum(0.5 * eps.unsqueeze(1) * u, lo), hi)


def _broken(
    model: Model,
    x: Tensor,
    y: Tensor,
    delta: Tensor,
    eps: Tensor,
    lo: Tensor,
    hi: Tensor,
    norm: str,
) -> Tensor:
    """[n] verified by a forward: x + δ misclassified, ‖δ‖ ≤ ε and lower − x ≤ δ ≤ upper − x
    (``lo``, ``hi``: those bounds of δ, flat [n, D]; the sets' convention)."""
    with torch.no_grad():
        wrong = model(x + delta.reshape(x.shape)).argmax(1) != y
    flat = delta.reshape(x.shape[0], -1)
    inside = ((flat >= lo) & (flat <= hi)).all(1)
    return wrong & (_norm(delta, norm) <= eps) & inside


def _targets(logits: Tensor, y: Tensor, k: int) -> Tensor:
    """[B, k'] the classes ≠ y by decreasing clean logit, k' = min(k, C − 1)."""
    masked = logits.scatter(1, y.unsqueeze(1), -math.inf)
    return masked.argsort(dim=1, descending=True)[:, : min(k, logits.shape[1] - 1)]


def _bound(value: float | Tensor | None, x: Tensor, fill: float) -> Tensor:
    """A bound as a tensor shaped like x (None: ±inf)."""
    if value is None:
        return torch.full_like(x, fill)
    return torch.as_tensor(value, dtype=x.dtype, device=x.device).expand_as(x)


def _attack(
    model: Model,
    x: Tensor,
    y: Tensor,
    eps: Tensor,
    lower: float | Tensor | None,
    upper: float | Tensor | None,
    s: _Schedule,
    gen: torch.Generator,
) -> Tensor:
    """δ [B, ...]: for each target in turn (then each restart), FAB on the examples not yet
    broken; keeps a run's δ only where `_broken` verifies it. Unchecked arguments."""
    low, up = _bound(lower, x, -math.inf), _bound(upper, x, math.inf)
    with torch.no_grad():
        clean = model(x)
    if clean.ndim != 2 or clean.shape[0] != x.shape[0] or clean.shape[1] < 2:
        raise ValueError(f"FAB-T needs class logits [B, C ≥ 2], got {tuple(clean.shape)}")
    found = torch.zeros_like(x)
    done = clean.argmax(1) != y  # already misclassified at δ = 0
    targets = _targets(clean, y, s.targets)
    for k in range(targets.shape[1]):
        for restart in range(s.restarts):
            rows = torch.nonzero(~done & (eps > 0)).squeeze(1)
            if rows.numel() == 0:
                return found
            xr, yr, er = x[rows], y[rows], eps[rows]
            lo = (low[rows] - xr).reshape(rows.numel(), -1)
            hi = (up[rows] - xr).reshape(rows.numel(), -1)
            start = torch.zeros_like(lo) if restart == 0 else _start(xr, er, lo, hi, s.norm, gen)
            delta = _fab_run(model, xr, yr, targets[rows, k], lo, hi, start, s, er)
            delta = delta.reshape(xr.shape)
            ok = _broken(model, xr, yr, delta, er, lo, hi, s.norm)
            found[rows[ok]] = delta[ok]
            done[rows[ok]] = True
    return found


def _schedule(
    norm: str, steps: int, targets: int, restarts: int, alpha_max: float, eta: float, beta: float
) -> _Schedule:
    return _Schedule(
        steps=checks.integer("steps", steps, minimum=1),
        targets=checks.integer("targets", targets, minimum=1),
        restarts=checks.integer("restarts", restarts, minimum=1),
        alpha_max=checks.real_number("alpha_max", alpha_max, nonnegative=True, at_most=1.0),
        eta=checks.real_number("eta", eta, positive=True),
        beta=checks.real_number("beta", beta, positive=True, at_most=1.0),
        norm=checks.choice("norm", str(norm).lower(), ("linf", "l2")),
    )


def fab_targeted(
    model: Model,
    x: Tensor,
    y: Tensor,
    *,
    eps: float | Tensor,
    norm: str = "linf",
    lower: float | Tensor | None = 0.0,
    upper: float | Tensor | None = 1.0,
    steps: int = 100,
    targets: int = 9,
    restarts: int = 1,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
    seed: int = 0,
) -> Tensor:
    """FAB-T (see the module docstring): adversarial perturbations δ [B, ...] for a classifier.

    Args:
        model: maps inputs [n, ...] to logits [n, C] (C ≥ 2), each example independently (eval
            mode); differentiable in its input.
        x: inputs [B, ...] (float) in [lower, upper]; y: integer labels [B].
        eps: the radius (> 0; a float or a [B] tensor); norm: ``"linf"`` or ``"l2"``.
        lower, upper: the input box (floats or tensors broadcasting to x; None: unbounded).
        steps, targets, restarts, alpha_max, eta, beta: the schedule (defaults: AutoAttack's).
        seed: the random starts of restarts after the first (the first starts at x).

    Returns:
        δ with x + δ misclassified, ``‖δ‖ ≤ eps`` and inside the box (each checked by a forward
        and a comparison), and δ = 0 for the examples not broken (or misclassified at x).
    """
    s = _schedule(norm, steps, targets, restarts, alpha_max, eta, beta)
    x = checks.float_tensor("x", x)
    if not isinstance(y, Tensor) or y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError("y must be a tensor of integer class labels [B]")
    if y.shape != x.shape[:1]:
        raise ValueError(f"y must have shape [B] = {tuple(x.shape[:1])}, got {tuple(y.shape)}")
    if isinstance(eps, Tensor):
        eps_b = eps.to(dtype=x.dtype, device=x.device).expand(x.shape[0])
        if not bool(torch.isfinite(eps_b).all() & (eps_b > 0).all()):
            raise ValueError("eps must be > 0 and finite for every example")
    else:
        e = checks.real_number("eps", eps, positive=True)
        eps_b = torch.full((x.shape[0],), e, dtype=x.dtype, device=x.device)
    checks.within("x", x, lower, upper)
    return _attack(model, x, y, eps_b, lower, upper, s, make_generator(seed))


class FABTargeted(InnerSolver):
    """FAB-T as an inner solver (one candidate per example: the verified adversarial δ, else 0).

    Needs a `ModuleProblem` (class logits [B, C], integer labels y [B], examples independent)
    over a `LinfBall` or `L2Ball` (its ε, per example or not, and its input bounds). Arguments as
    in `fab_targeted`; ``restarts`` are FAB's runs per target (m stays 1).
    """

    def __init__(
        self,
        steps: int = 100,
        targets: int = 9,
        restarts: int = 1,
        *,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        seed: int | None = 0,
        stop: EarlyStop | None = None,
    ) -> None:
        super().__init__(restarts=1, random_start=False, seed=seed)
        self.schedule = _schedule("linf", steps, targets, restarts, alpha_max, eta, beta)
        self.stop = stop

    @property
    def stop(self) -> EarlyStop | None:
        """Early stopping within each run (None: every run takes all ``steps``): a run stops
        on an example once it holds a misclassified δ within ε, or once its margin
        z_t − z_y has not increased for ``stop.patience`` steps."""
        return self.schedule.stop

    @stop.setter
    def stop(self, value: EarlyStop | None) -> None:
        if value is not None and not isinstance(value, EarlyStop):
            raise TypeError(f"stop must be an EarlyStop or None, got {type(value).__name__}")
        self.schedule = dataclasses.replace(self.schedule, stop=value)

    def __repr__(self) -> str:
        s = self.schedule
        return (
            f"FABTargeted(steps={s.steps}, targets={s.targets}, restarts={s.restarts}, "
            f"alpha_max={s.alpha_max}, eta={s.eta}, beta={s.beta})"
        )

    def search(
        self, engine: Engine, params: Params, batch: Batch, generator: torch.Generator | None
    ) -> Candidates:
        problem = engine.problem
        S = problem.perturbation
        if not isinstance(S, (LinfBall, L2Ball)):
            raise ValueError(
                f"FAB-T needs a classifier's problem over a LinfBall or an L2Ball, got {problem!r}"
            )
        model = engine.classifier(params)  # refuses problems without independent class logits
        x, y = problem.clean_input(batch), batch[1]
        assert x is not None  # a classifier's problem has inputs
        if y.is_floating_point() or y.dtype == torch.bool or y.ndim != 1:
            raise ValueError(f"FAB-T needs integer labels y [B], got {y.dtype} {tuple(y.shape)}")
        eps = torch.as_tensor(S.eps, dtype=x.dtype, device=x.device).expand(x.shape[0])
        norm = "linf" if isinstance(S, LinfBall) else "l2"
        s = dataclasses.replace(self.schedule, norm=norm)
        delta = _attack(model, x, y, eps, S.lower, S.upper, s, generator or self.generator)
        deltas = S.project(delta, x).unsqueeze(0)
        with torch.no_grad():
            values = engine.values(params, deltas, batch)
        return Candidates(deltas, values)
