"""Robust-accuracy evaluation of an image classifier (RobustBench-style fields).

Public API::

    evaluate(model, data, *, eps, attacks=DEFAULT_ATTACKS, restarts=1, batch_size=256, seed=0,
             device="cpu", norm="linf", progress=False) -> dict
    make_attack(name, eps, restarts=1, seed=0) -> minimax.InnerSolver | None   (None for "clean")
    expected_calibration_error(confidence [N], correct [N], bins=15) -> float

Attack names: ``"clean"``; ``"pgdK"`` (PGD with K steps of 2.5·ε/K, Madry et al. 2018, random
start; e.g. ``pgd20``); ``"apgd-ce"`` / ``"apgd-dlr"`` (APGD with 100 steps, Croce & Hein 2020,
the first two attacks of AutoAttack; ``"apgd-ce50"`` sets the steps); ``"fgsm"``. The families
live in the `ATTACKS` registry. An example
counts as robust to an attack only when it is classified correctly at every restart's result.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import minimax
from minimax.registry import Registry
from problems.threats import make_perturbation

__all__ = [
    "ATTACKS",
    "DEFAULT_ATTACKS",
    "Attack",
    "evaluate",
    "expected_calibration_error",
    "make_attack",
    "parse_attacks",
]

DEFAULT_ATTACKS: tuple[str, ...] = ("clean", "pgd20", "pgd50", "apgd-ce", "apgd-dlr")
_NAME = re.compile(r"^([a-z][a-z-]*?)(\d+)?$")  # family, then optional steps: apgd-ce50


@dataclass(frozen=True)
class Attack:
    """An attack family: ``build(eps, steps, restarts, seed)`` → an inner solver (None: clean).

    steps: ``None`` (the name takes no step count), ``"required"`` (``pgdK``), or the default
        count when the name has none (``apgd-ce`` = ``apgd-ce100``).
    """

    build: Callable[[float, int, int, int], minimax.InnerSolver | None]
    steps: int | str | None = None

    def __call__(
        self, eps: float, steps: int | None, restarts: int, seed: int
    ) -> minimax.InnerSolver | None:
        if steps is None:
            steps = self.steps if isinstance(self.steps, int) else 0
        return self.build(eps, steps, restarts, seed)


def _clean(eps: float, steps: int, restarts: int, seed: int) -> None:
    return None


def _fgsm(eps: float, steps: int, restarts: int, seed: int) -> minimax.InnerSolver:
    return minimax.FGSM(eps, restarts=restarts, seed=seed)


def _pgd(eps: float, steps: int, restarts: int, seed: int) -> minimax.InnerSolver:
    return minimax.PGD(steps, 2.5 * eps / steps, restarts=restarts, seed=seed)


def _apgd(loss: str) -> Callable[[float, int, int, int], minimax.InnerSolver]:
    def build(eps: float, steps: int, restarts: int, seed: int) -> minimax.InnerSolver:
        return minimax.APGD(steps, restarts, loss=loss, seed=seed)  # type: ignore[arg-type]

    return build


#: family → `Attack`; ``minimax evaluate --attacks`` takes these names (with step counts where
#: the family has them). To add an attack, register an `Attack` here.
ATTACKS: Registry[minimax.InnerSolver | None] = Registry("attack")
ATTACKS.add("clean", Attack(_clean), help="no attack: clean accuracy")
ATTACKS.add("fgsm", Attack(_fgsm), help="one signed-gradient step of size eps")
ATTACKS.add("pgd", Attack(_pgd, steps="required"),
            help="pgdK: K steps of 2.5·eps/K from a random start (Madry et al. 2018), e.g. pgd20")
ATTACKS.add("apgd-ce", Attack(_apgd("ce"), steps=100),
            help="APGD with cross-entropy (Croce & Hein 2020), 100 steps; apgd-ce50 sets them")
ATTACKS.add("apgd-dlr", Attack(_apgd("dlr"), steps=100),
            help="APGD with the DLR loss (Croce & Hein 2020), 100 steps; apgd-dlr50 sets them")


def _split_name(name: str) -> tuple[str, int | None]:
    """``"pgd20"`` → ("pgd", 20); ``"apgd-ce"`` → ("apgd-ce", None); unknown → ValueError."""
    m = _NAME.match(name)
    family, steps = (m.group(1), m.group(2)) if m else (name, None)
    attack = ATTACKS.get(family) if family in ATTACKS else None
    if not isinstance(attack, Attack) or (steps is not None and attack.steps is None) or (
        steps is None and attack.steps == "required"
    ):
        raise ValueError(
            f"unknown attack {name!r}: use clean, fgsm, pgdK (e.g. pgd20), apgd-ce, apgd-dlr "
            "(optionally with steps, e.g. apgd-ce50)"
        )
    if steps is not None and int(steps) < 1:
        raise ValueError(f"{name}: {family} needs at least 1 step")
    return family, None if steps is None else int(steps)


def parse_attacks(spec: str | Sequence[str]) -> list[str]:
    """``"pgd20,apgd-ce"`` or a list → validated attack names (``clean`` first if present)."""
    names = [a.strip().lower() for a in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [a for a in names if a]
    if not names:
        raise ValueError("no attack given: e.g. clean,pgd20,apgd-ce")
    for name in names:
        _split_name(name)
    return sorted(dict.fromkeys(names), key=lambda a: a != "clean")


def make_attack(
    name: str, eps: float, restarts: int = 1, seed: int = 0
) -> minimax.InnerSolver | None:
    """The inner solver for an attack name (None for ``"clean"``)."""
    family, steps = _split_name(name)
    attack = ATTACKS.get(family)
    assert isinstance(attack, Attack)
    return attack(eps, steps, restarts, seed)


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins: Σ_b (n_b / N)·|acc_b − conf_b|.

    confidence [N] (max softmax probability), correct [N] bool.
    """
    n = confidence.numel()
    if n == 0:
        return math.nan
    conf = confidence.double().clamp(0, 1)
    acc = correct.double()
    index = (conf * bins).long().clamp(max=bins - 1)  # bin b holds (b/bins, (b+1)/bins]
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += float(mask.sum()) / n * abs(float(acc[mask].mean() - conf[mask].mean()))
    return ece


def evaluate(
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    *,
    eps: float,
    attacks: Sequence[str] | str = DEFAULT_ATTACKS,
    restarts: int = 1,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    norm: str = "linf",
    progress: bool = False,
) -> dict[str, Any]:
    """Clean and robust accuracy of ``model`` (in eval mode) on ``data``.

    Args:
        model: classifier [B, ...] in [0, 1] → logits [B, C]; moved to ``device``.
        data: images [N, ...] (float in [0, 1] or uint8) and labels int64 [N].
        eps: the radius of the ``norm`` ball (x + δ stays in [0, 1]).
        attacks: names (see the module docstring) or a comma-separated string.
        restarts: random restarts per attack; robust = correct at every restart.

    Returns:
        a JSON-able dict: ``clean_acc``, ``robust_acc`` {attack: accuracy},
        ``worst_case_acc`` (correct under every attack), ``autoattack_first_two`` (under both
        apgd-ce and apgd-dlr, None unless both ran), ``clean_confidence`` / ``clean_ece`` and
        ``adversarial_confidence`` / ``adversarial_ece`` (at each example's worst input: a
        misclassifying one if any, else the highest-loss one; 15 bins), ``eps``, ``norm``,
        ``n_examples``, ``restarts``, ``attacks``, ``seconds`` {attack: seconds}.
    """
    names = parse_attacks(attacks)
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number ≥ 0, got {eps!r}")
    if restarts < 1:
        raise ValueError(f"restarts must be ≥ 1, got {restarts}")
    x_all, y_all = data
    n = int(x_all.shape[0])
    if n == 0 or y_all.shape[0] != n:
        raise ValueError(f"data has {n} images and {y_all.shape[0]} labels (need N ≥ 1, equal)")
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    dtype = next(model.parameters()).dtype
    problem = minimax.ModuleProblem(model, perturbation=make_perturbation(norm, eps))
    params = problem.parameters()
    solvers = {a: make_attack(a, eps, restarts, seed) for a in names}
    tally = _Tally.empty(n, names)
    try:
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
            sl = slice(start, start + batch_size)
            x = x_all[sl]
            x = (x.float() / 255.0 if not x.is_floating_point() else x).to(device, dtype)
            _evaluate_batch(model, problem, params, solvers, x, y_all[sl].to(device), sl, tally)
    finally:
        model.train(was_training)
    return {**tally.summary(), "eps": float(eps), "norm": norm, "n_examples": n,
            "restarts": restarts, "attacks": names, "seconds": tally.seconds}  # fmt: skip


@dataclass
class _Tally:
    """Per-example outcomes over the whole set (CPU tensors [N]) and seconds per attack."""

    clean_correct: Tensor
    clean_conf: Tensor
    robust: dict[str, Tensor]  # attack → correct at every restart
    worst_conf: Tensor  # confidence at each example's worst input
    worst_correct: Tensor
    seconds: dict[str, float]

    @classmethod
    def empty(cls, n: int, names: Sequence[str]) -> _Tally:
        return cls(
            torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.float64),
            {a: torch.zeros(n, dtype=torch.bool) for a in names if a != "clean"},
            torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.bool),
            dict.fromkeys(names, 0.0),
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """The accuracy, worst-case and calibration fields of `evaluate`'s result."""
        all_robust = self.clean_correct.clone()
        for r in self.robust.values():
            all_robust &= r
        first_two = None
        apgd_ce = [a for a in self.robust if a.startswith("apgd-ce")]
        apgd_dlr = [a for a in self.robust if a.startswith("apgd-dlr")]
        if apgd_ce and apgd_dlr:
            both = self.robust[apgd_ce[0]] & self.robust[apgd_dlr[0]]
            first_two = float(both.double().mean())
        adversarial = bool(self.robust)
        return {
            "clean_acc": float(self.clean_correct.double().mean()),
            "robust_acc": {a: float(r.double().mean()) for a, r in self.robust.items()},
            "worst_case_acc": float(all_robust.double().mean()),
            "autoattack_first_two": first_two,
            "clean_confidence": float(self.clean_conf.mean()),
            "clean_ece": expected_calibration_error(self.clean_conf, self.clean_correct),
            "adversarial_confidence": float(self.worst_conf.mean()) if adversarial else None,
            "adversarial_ece": (
                expected_calibration_error(self.worst_conf, self.worst_correct)
                if adversarial else None
            ),
        }  # fmt: skip


def _evaluate_batch(
    model: nn.Module,
    problem: minimax.ModuleProblem,
    params: dict[str, Tensor],
    solvers: dict[str, minimax.InnerSolver | None],
    x: Tensor,
    y: Tensor,
    sl: slice,
    tally: _Tally,
) -> None:
    """Clean and robust outcomes of one batch x [B, ...], y [B] into ``tally`` rows ``sl``."""
    t0 = time.perf_counter()
    with torch.no_grad():
        logits = model(x)
    tally.seconds["clean"] = tally.seconds.get("clean", 0.0) + time.perf_counter() - t0
    prob = logits.double().softmax(-1)
    ok = logits.argmax(-1) == y
    tally.clean_correct[sl] = ok.cpu()
    tally.clean_conf[sl] = prob.max(-1).values.cpu()
    # each example's worst input so far: (misclassified, loss) lexicographic
    worst = (torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device),
             prob.max(-1).values, ok)  # fmt: skip
    for name, solver in solvers.items():
        if solver is None:
            continue
        t0 = time.perf_counter()
        cands = solver(problem, params, (x, y))
        all_ok, worst = _score_candidates(model, x, y, cands.deltas, worst)
        tally.robust[name][sl] = all_ok.cpu()
        tally.seconds[name] += time.perf_counter() - t0
    tally.worst_conf[sl] = worst[1].cpu()
    tally.worst_correct[sl] = worst[2].cpu()


def _score_candidates(
    model: nn.Module, x: Tensor, y: Tensor, deltas: Tensor, worst: tuple[Tensor, Tensor, Tensor]
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Correct at every restart's input x + δ_i (deltas [m, B, ...]) → [B] bool, and the worst
    input so far as (key, confidence, correct), each [B]."""
    best_key, best_conf, best_ok = worst
    all_ok = torch.ones_like(best_ok)
    with torch.no_grad():
        for delta in deltas:  # [B, ...] per restart
            out = model(x + delta)
            p = out.double().softmax(-1)
            ok_i = out.argmax(-1) == y
            all_ok &= ok_i
            loss = nn.functional.cross_entropy(out.double(), y, reduction="none")
            key = loss.clamp(-1e6, 1e6) + 1e7 * (~ok_i).double()
            better = key > best_key
            best_key = torch.where(better, key, best_key)
            best_conf = torch.where(better, p.max(-1).values, best_conf)
            best_ok = torch.where(better, ok_i, best_ok)
    return all_ok, (best_key, best_conf, best_ok)
