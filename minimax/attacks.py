"""One-line attacks on any ``nn.Module`` classifier, and the named attacks and suites behind them.

    x_adv = minimax.attack(model, x, y, eps=8/255)                       # APGD-CE, L∞
    x_adv = minimax.attack(model, x, y, eps=0.5, norm="l2", attack="square")

`ATTACKS` maps a name to an inner solver builder ``(eps, steps, restarts, seed) -> InnerSolver``;
`SUITES` maps a suite name to attack names (see `minimax.evaluate`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from minimax import checks
from minimax.engine import engine_of
from minimax.inner import APGD, FGSM, PGD, InnerSolver
from minimax.inner.apgd_targeted import APGDTargeted
from minimax.inner.early_stop import EarlyStop
from minimax.inner.fab import FABTargeted
from minimax.inner.square import Square
from minimax.problem import ModuleProblem
from minimax.problem.module import _per_example_cross_entropy as cross_entropy
from minimax.registry import Registry
from minimax.sets import L2Ball, LinfBall, PerturbationSet

__all__ = ["ATTACKS", "SUITES", "THREATS", "attack", "build_attack", "model_mode", "threat_set"]

Mode = Literal["eval", "train", "as-is"]
Norm = Literal["linf", "l2"]
Loss = Callable[[Tensor, Tensor], Tensor]

ATTACKS: Registry[InnerSolver] = Registry("attack")


@ATTACKS.register("pgd", help="PGD (Madry et al. 2018): 20 steps of 2.5·ε/steps, random start")
def _pgd(eps: float, steps: int | None, restarts: int, seed: int) -> InnerSolver:
    k = 20 if steps is None else steps
    return PGD(k, 2.5 * eps / k, restarts=restarts, seed=seed)


@ATTACKS.register("fgsm", help="FGSM: one step of size ε from δ = 0")
def _fgsm(eps: float, steps: int | None, restarts: int, seed: int) -> InnerSolver:
    return FGSM(restarts=restarts, seed=seed, random_start=restarts > 1)


@ATTACKS.register("apgd-ce", help="APGD on the cross entropy (Croce & Hein 2020), 100 steps")
def _apgd_ce(eps: float, steps: int | None, restarts: int, seed: int) -> InnerSolver:
    return APGD(100 if steps is None else steps, restarts, loss="ce", seed=seed)


@ATTACKS.register("apgd-dlr", help="APGD on the untargeted DLR loss, 100 steps")
def _apgd_dlr(eps: float, steps: int | None, restarts: int, seed: int) -> InnerSolver:
    return APGD(100 if steps is None else steps, restarts, loss="dlr", seed=seed)


@ATTACKS.register("apgd-t", help="APGD-T: targeted DLR towards the top-9 classes, 100 steps each")
def _apgd_t(eps: float, steps: int | None, restarts: int, seed: int) -> InnerSolver:
    return APGDTargeted(100 if steps is None else steps, targets=9, restarts=restarts, seed=seed)


@ATTACKS.register("square", help="Square (Andriushchenko et al. 2020): 5000 queries, p_init 0.8")
def _square(eps: float, steps: int | None, restarts: int, seed: int) -> InnerSolver:
    return Square(5000 if steps is None else steps, restarts, p_init=0.8, seed=seed)


@ATTACKS.register(
    "fab-t", help="FAB-T (Croce & Hein 2020): targeted minimal-norm FAB, top-9 targets, 100 steps"
)
def _fab_t(eps: float, steps: int | None, restarts: int, seed: int) -> InnerSolver:
    return FABTargeted(100 if steps is None else steps, targets=9, restarts=restarts, seed=seed)


SUITES: dict[str, tuple[str, ...]] = {
    # AutoAttack's "standard" suite: three gradient attacks and a gradient-free one (which
    # exposes gradient masking).
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    # the same without FAB-T: faster, for development.
    "fast": ("apgd-ce", "apgd-t", "square"),
    # AutoAttack's first two attacks.
    "first-two": ("apgd-ce", "apgd-t"),
}


def early_stop_rule(solver: InnerSolver) -> EarlyStop | None:
    """The early stopping `build_attack` gives an attack with ``early_stop=True``: PGD stops an
    example when its iterates cycle (exact, nothing lost); APGD, APGD-T and FAB-T also stop it
    once misclassified (within ε) or after ``max(20, ⌈steps/4⌉)`` iterations without an increase
    of its loss; Square after ``max(500, ⌈queries/10⌉)`` queries without an increase of its
    margin. None for other solvers."""
    steps = {APGD: lambda a: a.steps, APGDTargeted: lambda a: a.apgd.steps}
    steps[FABTargeted] = lambda a: a.schedule.steps
    if type(solver) in steps:
        k = int(steps[type(solver)](solver))
        return EarlyStop(patience=EarlyStop.scaled(k, 0.25, 20), cycles=False)
    if isinstance(solver, Square):
        return EarlyStop(patience=EarlyStop.scaled(solver.queries, 0.1, 500), cycles=False)
    if isinstance(solver, PGD) and solver.steps > 1:
        return EarlyStop(patience=None, cycles=True)
    return None


def build_attack(
    name: str | InnerSolver,
    eps: float,
    *,
    steps: int | None = None,
    restarts: int = 1,
    seed: int = 0,
    early_stop: bool = False,
) -> InnerSolver:
    """The inner solver for an attack ``name`` (see `ATTACKS`; an `InnerSolver` passes through
    unchanged).

    ``steps`` overrides the attack's iterations (queries for ``"square"``); ``early_stop`` gives
    it `early_stop_rule`."""
    if isinstance(name, InnerSolver):
        return name
    if not isinstance(name, str):
        raise TypeError(f"attack must be a name or an InnerSolver, got {type(name).__name__}")
    if steps is not None:
        steps = checks.integer("steps", steps, minimum=1)
    restarts = checks.integer("restarts", restarts, minimum=1)
    solver = ATTACKS.build(name.lower(), eps, steps, restarts, checks.seed("seed", seed))
    if early_stop:
        rule = early_stop_rule(solver)
        if rule is not None:
            solver.stop = rule  # type: ignore[attr-defined]
    return solver


#: name → ``(eps, *, lower, upper) -> PerturbationSet``: the threat models `threat_set` builds
THREATS: Registry[PerturbationSet] = Registry("threat")
THREATS.add("linf", LinfBall, help="the L∞ ball ‖δ‖∞ ≤ ε")
THREATS.add("l2", L2Ball, help="the L2 ball ‖δ‖₂ ≤ ε")


def threat_set(
    norm: str,
    eps: float | Tensor,
    lower: float | Tensor | None = 0.0,
    upper: float | Tensor | None = 1.0,
    *,
    allow_large_eps: bool = False,
) -> PerturbationSet:
    """The threat model's set, the one builder of an ε-ball threat: the ``norm`` ball (a
    `THREATS` name) of radius ``eps`` (a float or per-example [B] tensor), with
    ``lower ≤ x + δ ≤ upper`` (None: unbounded). An L∞ ``eps`` wider than ``upper − lower``
    (every input reachable, usually a forgotten /255) is refused unless ``allow_large_eps``."""
    norm = checks.choice("norm", str(norm).lower(), THREATS.names())
    for name, bound in (("lower", lower), ("upper", upper)):
        if bound is not None and not isinstance(bound, Tensor):
            checks.real_number(name, bound)
    if isinstance(lower, (int, float)) and isinstance(upper, (int, float)) and lower > upper:
        raise ValueError(
            f"lower = {lower:g} > upper = {upper:g}: the input range is empty; pass the bounds "
            "of x (e.g. lower=0, upper=1 for images)"
        )
    if not isinstance(eps, Tensor):
        eps = checks.radius(
            "eps", eps, norm=norm, lower=lower, upper=upper, allow_large=allow_large_eps
        )
    return THREATS.build(norm, eps, lower=lower, upper=upper)


@contextlib.contextmanager
def model_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Inside, ``model`` is in ``mode`` (``"eval"``, ``"train"``, or ``"as-is"``: untouched); on
    exit every submodule gets back its own train/eval flag."""
    mode = checks.choice("mode", mode, ("eval", "train", "as-is"))
    saved = [(m, m.training) for m in model.modules()]
    try:
        if mode != "as-is" and any(t != (mode == "train") for _, t in saved):
            model.train(mode == "train")
        yield
    finally:
        for m, training in saved:
            if m.training != training:
                m.training = training


def check_classifier(
    problem: ModuleProblem, x: Tensor, y: Tensor, bounds: tuple[object, object]
) -> int:
    """Check x, y and the model's output once, before any attack (`classifier_logits`); returns
    the number of classes C."""
    return int(classifier_logits(problem, x, y, bounds).shape[1])


def check_batch(
    problem: ModuleProblem, x: Tensor, y: Tensor, bounds: tuple[object, object]
) -> None:
    """Check x and y without running the model: x a finite float batch [B, ...] in ``bounds``
    on the model's device, y integer labels [B] there."""
    checks.float_tensor("x", x)
    checks.labels("y", y, x.shape[0] if x.ndim else None)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch [B, ...] with B ≥ 1, got shape {tuple(x.shape)}")
    dev = problem.reference((x, y)).device
    if x.device != dev or y.device != dev:
        raise ValueError(
            f"x ({x.device}) and y ({y.device}) must be on the model's device ({dev}): move them "
            f"with .to('{dev}')"
        )
    S = problem.perturbation  # x was checked against the set's bounds when first used above
    if not (
        _same(bounds[0], getattr(S, "lower", None)) and _same(bounds[1], getattr(S, "upper", None))
    ):
        checks.within("x", x, *bounds)


def classifier_logits(
    problem: ModuleProblem, x: Tensor, y: Tensor, bounds: tuple[object, object]
) -> Tensor:
    """The clean logits [B, C], checked: x a finite float tensor in ``bounds``, y integer labels
    [B] on x's device, logits [B, C] with C > max(y) (one no-grad forward of the batch, running
    statistics untouched)."""
    check_batch(problem, x, y, bounds)
    with checks.model_takes(x), torch.no_grad():
        zero = torch.zeros_like(x).unsqueeze(0)
        out = engine_of(problem).logits(problem.parameters(), zero, (x, y))[0]
    return checks.logits_for("model", out, y)


class _LogitsCheckedOnce:
    """``loss`` that first checks the model's output against the labels (`checks.logits_for`:
    logits [B, C] with C > max(y)), at its first call."""

    def __init__(self, loss: Loss) -> None:
        self.loss, self.pending = loss, True

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        if self.pending:
            checks.logits_for("model", out, y)
            self.pending = False
        return self.loss(out, y)


def _same(a: object, b: object) -> bool:
    """Whether two bounds are the same (the same tensor, or equal numbers or None)."""
    return a is b or (not isinstance(a, Tensor) and not isinstance(b, Tensor) and a == b)


def worst_candidate(problem: ModuleProblem, deltas: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """[B, ...] each example's worst δ among deltas [m, B, ...]: a misclassified one if any (the
    highest-loss such), else the highest-loss one."""
    params = problem.parameters()
    keys = []
    with torch.no_grad():
        outs = engine_of(problem).logits(params, deltas, (x, y))  # [m, B, C], m forwards
        for out in outs:
            loss = problem.loss_fn(out, y).double().clamp(-1e6, 1e6)
            wrong = (
                out.argmax(-1) != y if out.ndim == 2 else torch.zeros_like(loss, dtype=torch.bool)
            )
            keys.append(loss + 1e7 * wrong.double())
    best = torch.stack(keys).argmax(dim=0)
    return deltas[best, torch.arange(x.shape[0], device=x.device)]


def _checked_search(
    model: nn.Module,
    solver: InnerSolver,
    loss: Loss | None,
    S: PerturbationSet,
    x: Tensor,
    y: Tensor,
    bounds: tuple[object, object],
) -> tuple[ModuleProblem, Tensor]:
    """The classifier's problem and the solver's candidates [m, B, ...] for (x, y), every input
    checked. PGD's losses are the problem's own: its first forward checks the model's output, so
    no forward is spent on checking alone (a model that cannot take x is explained on failure)."""
    lazy = isinstance(solver, PGD)
    scored = _LogitsCheckedOnce(loss or cross_entropy) if lazy else loss
    problem = ModuleProblem(model, loss_fn=scored, perturbation=S)
    if lazy:
        check_batch(problem, x, y, bounds)
    else:
        check_classifier(problem, x, y, bounds)
    try:
        found = solver(problem, problem.parameters(), (x, y), scored=False)
        return problem, found.deltas
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, IndexError):
        if lazy:  # raises the clear error where the model cannot take x
            classifier_logits(problem, x, y, bounds)
        raise


def attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm = "linf",
    attack: str | InnerSolver = "apgd-ce",
    steps: int | None = None,
    restarts: int = 1,
    loss: Loss | None = None,
    lower: float | Tensor | None = 0.0,
    upper: float | Tensor | None = 1.0,
    mode: Mode = "eval",
    seed: int = 0,
    allow_large_eps: bool = False,
    early_stop: bool = False,
) -> Tensor:
    """Adversarial inputs ``x_adv`` [B, ...] for a classifier: ``‖x_adv − x‖ ≤ eps`` in ``norm``,
    ``lower ≤ x_adv ≤ upper``.

    Args:
        model: any ``nn.Module`` mapping x [B, ...] to logits [B, C]; left where it is (x and y
            must be on its device).
        x, y: inputs (float) and integer labels [B].
        eps: the radius (a float, or a [B] tensor of per-example radii).
        norm: ``"linf"`` or ``"l2"``.
        attack: a name from `ATTACKS` (``"pgd"``, ``"fgsm"``, ``"apgd-ce"``, ``"apgd-dlr"``,
            ``"apgd-t"``, ``"fab-t"``, ``"square"``) or any `InnerSolver`.
        steps: iterations (queries for Square); None: the attack's published default.
        restarts: random restarts; each example gets its worst result.
        loss: the per-example loss ``(logits, y) -> [B]`` the attack maximizes (default: cross
            entropy; APGD-DLR, APGD-T and Square use their own losses to search).
        lower, upper: bounds on x_adv (None: unbounded).
        mode: ``"eval"`` (default) or ``"train"`` puts the model in that mode for the attack;
            ``"as-is"`` leaves it. Every submodule's mode is restored afterwards; BatchNorm
            running statistics are never updated.
        seed: seeds the attack's random starts.
        allow_large_eps: accept an L∞ ``eps`` wider than ``upper − lower`` (see `threat_set`).
        early_stop: stop attacking an example early (`early_stop_rule`; a named attack only).

    Returns:
        x + δ, detached, with δ each example's worst candidate (a misclassifying one if any).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    checks.float_tensor("x", x)
    S = threat_set(norm, eps, lower, upper, allow_large_eps=allow_large_eps)
    solver = build_attack(
        attack, eps, steps=steps, restarts=restarts, seed=seed, early_stop=early_stop
    )
    with model_mode(model, mode):
        problem, deltas = _checked_search(model, solver, loss, S, x, y, (lower, upper))
        delta = deltas[0] if deltas.shape[0] == 1 else worst_candidate(problem, deltas, x, y)
    return (x + delta).detach()
