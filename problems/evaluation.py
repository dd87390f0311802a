"""Robust-accuracy evaluation of an image classifier (RobustBench-style fields).

Public API::

    evaluate(model, data, *, eps, attacks=DEFAULT_ATTACKS, restarts=1, batch_size=256, seed=0,
             device="cpu", norm="linf", progress=False) -> dict
    make_attack(name, eps, restarts=1, seed=0) -> minimax.InnerSolver | None   (None for "clean")
    expected_calibration_error(confidence [N], correct [N], bins=15) -> float

Attack names: ``"clean"``; ``"pgdK"`` (PGD with K steps of 2.5·ε/K, Madry et al. 2018, random
start; e.g. ``pgd20``); ``"apgd-ce"`` / ``"apgd-dlr"`` (APGD with 100 steps, Croce & Hein 2020,
the first two attacks of AutoAttack; ``"apgd-ce50"`` sets the steps); ``"fgsm"``. An example
counts as robust to an attack only when it is classified correctly at every restart's result.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import minimax

__all__ = [
    "DEFAULT_ATTACKS",
    "evaluate",
    "expected_calibration_error",
    "make_attack",
    "parse_attacks",
]

DEFAULT_ATTACKS: tuple[str, ...] = ("clean", "pgd20", "pgd50", "apgd-ce", "apgd-dlr")
_PGD = re.compile(r"^pgd(\d+)$")
_APGD = re.compile(r"^apgd-(ce|dlr)(\d+)?$")


def parse_attacks(spec: str | Sequence[str]) -> list[str]:
    """``"pgd20,apgd-ce"`` or a list → validated attack names (``clean`` first if present)."""
    names = [a.strip().lower() for a in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [a for a in names if a]
    if not names:
        raise ValueError("no attack given: e.g. clean,pgd20,apgd-ce")
    for name in names:
        if name not in ("clean", "fgsm") and not _PGD.match(name) and not _APGD.match(name):
            raise ValueError(
                f"unknown attack {name!r}: use clean, fgsm, pgdK (e.g. pgd20), apgd-ce, apgd-dlr "
                "(optionally with steps, e.g. apgd-ce50)"
            )
        m = _PGD.match(name)
        if m and int(m.group(1)) < 1:
            raise ValueError(f"{name}: PGD needs at least 1 step")
    return sorted(dict.fromkeys(names), key=lambda a: a != "clean")


def make_attack(
    name: str, eps: float, restarts: int = 1, seed: int = 0
) -> minimax.InnerSolver | None:
    """The inner solver for an attack name (None for ``"clean"``)."""
    if name == "clean":
        return None
    if name == "fgsm":
        return minimax.FGSM(eps, restarts=restarts, seed=seed)
    m = _PGD.match(name)
    if m:
        k = int(m.group(1))
        return minimax.PGD(k, 2.5 * eps / k, restarts=restarts, seed=seed)
    m = _APGD.match(name)
    if m:
        apgd = getattr(minimax, "APGD", None)
        if apgd is None:
            raise ValueError(f"{name} needs minimax.APGD, which this version does not export")
        steps = int(m.group(2)) if m.group(2) else 100
        return apgd(steps, restarts, loss=m.group(1), seed=seed)
    raise ValueError(f"unknown attack {name!r}")


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


def _perturbation(norm: str, eps: float) -> minimax.PerturbationSet:
    if norm == "linf":
        return minimax.LinfBall(eps, lower=0.0, upper=1.0)
    if norm == "l2":
        return minimax.L2Ball(eps, lower=0.0, upper=1.0)
    raise ValueError(f"unknown norm {norm!r}; choose linf or l2")


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
    problem = minimax.ModuleProblem(model, perturbation=_perturbation(norm, eps))
    params = problem.parameters()
    solvers = {a: make_attack(a, eps, restarts, seed) for a in names}
    adversarial = [a for a in names if a != "clean"]

    clean_correct = torch.zeros(n, dtype=torch.bool)
    clean_conf = torch.zeros(n, dtype=torch.float64)
    robust = {a: torch.zeros(n, dtype=torch.bool) for a in adversarial}
    worst_conf = torch.zeros(n, dtype=torch.float64)
    worst_correct = torch.ones(n, dtype=torch.bool)
    seconds = dict.fromkeys(names, 0.0)
    try:
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
            sl = slice(start, start + batch_size)
            x = x_all[sl]
            x = (x.float() / 255.0 if not x.is_floating_point() else x).to(device, dtype)
            y = y_all[sl].to(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                logits = model(x)
            seconds["clean"] = seconds.get("clean", 0.0) + time.perf_counter() - t0
            prob = logits.double().softmax(-1)
            ok = logits.argmax(-1) == y
            clean_correct[sl] = ok.cpu()
            clean_conf[sl] = prob.max(-1).values.cpu()
            # each example's worst input so far: (misclassified, loss) lexicographic
            best_key = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=device)
            best_conf = prob.max(-1).values
            best_ok = ok
            for name in adversarial:
                t0 = time.perf_counter()
                solver = solvers[name]
                assert solver is not None
                cands = solver(problem, params, (x, y))
                all_ok = torch.ones_like(ok)
                with torch.no_grad():
                    for delta in cands.deltas:  # [B, ...] per restart
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
                robust[name][sl] = all_ok.cpu()
                seconds[name] += time.perf_counter() - t0
            worst_conf[sl] = best_conf.cpu()
            worst_correct[sl] = best_ok.cpu()
    finally:
        model.train(was_training)

    all_robust = clean_correct.clone()
    for r in robust.values():
        all_robust &= r
    first_two = None
    apgd_ce = [a for a in adversarial if a.startswith("apgd-ce")]
    apgd_dlr = [a for a in adversarial if a.startswith("apgd-dlr")]
    if apgd_ce and apgd_dlr:
        first_two = float((robust[apgd_ce[0]] & robust[apgd_dlr[0]]).double().mean())
    result: dict[str, Any] = {
        "clean_acc": float(clean_correct.double().mean()),
        "robust_acc": {a: float(r.double().mean()) for a, r in robust.items()},
        "worst_case_acc": float(all_robust.double().mean()),
        "autoattack_first_two": first_two,
        "clean_confidence": float(clean_conf.mean()),
        "clean_ece": expected_calibration_error(clean_conf, clean_correct),
        "adversarial_confidence": float(worst_conf.mean()) if adversarial else None,
        "adversarial_ece": (
            expected_calibration_error(worst_conf, worst_correct) if adversarial else None
        ),
        "eps": float(eps),
        "norm": norm,
        "n_examples": n,
        "restarts": restarts,
        "attacks": names,
        "seconds": seconds,
    }
    return result
