"""Robust accuracy of a classifier under a suite of attacks (`evaluate`, its `Evaluation`).

    result = minimax.evaluate(model, (x, y), eps=8/255)    # APGD-CE, APGD-T, FAB-T, Square
    print(result.clean_acc, result.robust_acc, result.per_attack)
    print(result.cpu_seconds, result.passes, result.images_per_second())
    minimax.write_robustbench(result, "model.json", dataset="cifar10")

An example counts as robust when the model classifies it correctly at the clean input and at every
candidate of every attack (the worst case per example). With ``cascade=True`` (AutoAttack's
"standard" logic) each attack only runs on the examples still robust after the ones before it.
Public: `evaluate`; `Evaluation` (from `minimax.evaluation`), `robustbench_record` and
`write_robustbench` (from `minimax.robustbench`) re-exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from minimax import checks
from minimax.attacks import (
    SUITES,
    Mode,
    Norm,
    build_attack,
    classifier_logits,
    model_mode,
    threat_set,
)
from minimax.engine import engine_of
from minimax.evaluation import Evaluation, _Cost, _Parts, _Worst
from minimax.inner import InnerSolver
from minimax.problem import ModuleProblem
from minimax.robustbench import robustbench_record, write_robustbench

__all__ = ["Evaluation", "evaluate", "robustbench_record", "write_robustbench"]


def _labelled(
    attacks: str | Sequence[str | InnerSolver] | Mapping[str, str | InnerSolver],
) -> dict[str, str | InnerSolver]:
    """{label: attack name or solver}: a suite, names (comma-separated or a sequence; a solver
    is labelled by its repr) or a mapping from the labels the results should carry."""
    if isinstance(attacks, Mapping):
        named = dict(attacks)
    elif isinstance(attacks, str):
        names = SUITES.get(attacks) or [a.strip() for a in attacks.split(",") if a.strip()]
        named = {a: a for a in names}
    else:
        named = {a if isinstance(a, str) else repr(a): a for a in attacks}
    if not named:
        raise ValueError(
            f"attacks is empty: give a suite ({', '.join(SUITES)}) or attack names, e.g. "
            "('apgd-ce', 'square')"
        )
    return named


def _batches(
    data: tuple[Tensor, Tensor] | Iterable[Any], batch_size: int
) -> Iterable[tuple[Tensor, Tensor]]:
    """(x, y) batches from a pair of tensors [N, ...], [N] or any iterable of (x, y) batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        if not isinstance(y, Tensor) or y.shape[:1] != x.shape[:1] or x.shape[0] == 0:
            raise ValueError("data = (x, y) needs x [N, ...] and labels y [N] with N ≥ 1")
        for i in range(0, x.shape[0], batch_size):
            yield x[i : i + batch_size], y[i : i + batch_size]
        return
    if not isinstance(data, Iterable) or isinstance(data, (str, bytes, Tensor)):
        raise TypeError(
            "data must be a pair of tensors (x [N, ...], y [N]) or an iterable of (x, y) batches "
            f"(a DataLoader), got {type(data).__name__}"
        )
    for item in data:
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise TypeError("each batch of data must be (x, y, ...)")
        yield item[0], item[1]


def _scan(
    problem: ModuleProblem, x: Tensor, y: Tensor, deltas: Tensor, rows: Tensor, worst: _Worst
) -> Tensor:
    """[b] correct at every candidate of deltas [m, b, ...] (the batch rows ``rows`` [b]): one
    forward per candidate, which also offers each candidate to ``worst``."""
    params = problem.parameters()
    engine = engine_of(problem)
    ok = torch.ones_like(y, dtype=torch.bool)
    with torch.no_grad():
        for d in deltas:
            out = engine.logits(params, d.unsqueeze(0), (x, y))[0]
            ok_d = out.argmax(-1) == y
            ok &= ok_d
            worst.offer(rows, out, ok_d, y, d)
    return ok


def _evaluate_batch(
    problem: ModuleProblem,
    batch: tuple[Tensor, Tensor],
    solvers: dict[str, InnerSolver],
    cascade: bool,
    cost: _Cost,
    keep_delta: bool,
    clean_out: Tensor | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor], Tensor, _Worst]:
    """One batch (x, y): clean-correct [B], robust [B] (worst case), {attack: correct [B]}
    (after the attacks so far with ``cascade``, else under the attack alone), the clean outputs
    [B, C] (``clean_out`` where already computed) and the worst inputs (`_Worst`); adds to
    ``cost``."""
    x, y = batch
    with cost.timing("clean", problem, x.shape[0]):
        if clean_out is None:
            with torch.no_grad():
                zero = torch.zeros_like(x).unsqueeze(0)
                clean_out = engine_of(problem).logits(problem.parameters(), zero, (x, y))[0]
        clean = clean_out.argmax(-1) == y
        key = torch.full(y.shape, -torch.inf, dtype=torch.float64, device=y.device)
        worst = _Worst(key, clean_out.clone(), torch.zeros_like(x) if keep_delta else None)
    robust = clean.clone()
    per_attack = {}
    for label, solver in solvers.items():
        base = robust if cascade else clean
        rows = torch.nonzero(base).squeeze(1)
        with cost.timing(label, problem, rows.numel()):
            ok = base.clone()
            if rows.numel() > 0:
                sub = (x[rows], y[rows])
                found = solver(problem, problem.parameters(), sub, scored=False)
                ok[rows] = _scan(problem, *sub, found.deltas, rows, worst)
            robust &= ok
        per_attack[label] = (robust if cascade else ok).cpu()
    return clean.cpu(), robust.cpu(), per_attack, clean_out.cpu(), worst


# long: the public entry point; most of its length is the documented argument list.
def evaluate(
    model: nn.Module,
    data: tuple[Tensor, Tensor] | Iterable[Any],
    *,
    eps: float,
    norm: Norm = "linf",
    attacks: str | Sequence[str | InnerSolver] | Mapping[str, str | InnerSolver] = "standard",
    steps: int | None = None,
    restarts: int = 1,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    mode: Mode = "eval",
    cascade: bool = True,
    lower: float | None = 0.0,
    upper: float | None = 1.0,
    seed: int = 0,
    allow_large_eps: bool = False,
    return_adversarial: bool = False,
    early_stop: bool = False,
) -> Evaluation:
    """Clean and robust accuracy of a classifier under a suite of attacks, with the per-example,
    per-attack results behind them (`Evaluation`).

    Args:
        model: any ``nn.Module`` mapping x [B, ...] to logits [B, C].
        data: ``(x [N, ...], y [N])`` tensors, or an iterable of ``(x, y)`` batches (a
            ``DataLoader``); inputs already scaled to [lower, upper].
        eps: the radius of the ``norm`` ball (``"linf"`` or ``"l2"``).
        attacks: a suite name, ``"standard"`` (APGD-CE, APGD-T, FAB-T, Square: AutoAttack's
            standard suite), ``"fast"`` (the same without FAB-T) or ``"first-two"`` (APGD-CE,
            APGD-T, AutoAttack's first two), or attack names from `minimax.extend.ATTACKS` /
            `InnerSolver` instances, run in order, or a dict {label: name or solver} naming them
            in the results.
        steps, restarts: passed to every named attack (None: each one's published default).
        batch_size: examples per batch when data are tensors.
        device: where to run (the model is moved there and stays); None: the model's device.
        mode: ``"eval"``, ``"train"`` or ``"as-is"`` (see `minimax.attack`); restored afterwards.
            In train mode, BatchNorm normalizes each attacked subset of a batch with its own
            statistics (running statistics are never updated).
        cascade: run each attack only on the examples still robust (AutoAttack's logic); False
            runs every attack on every clean-correct example, so ``per_attack`` compares attacks.
        lower, upper: bounds on x + δ.
        seed: seeds every attack's random starts.
        allow_large_eps: accept an L∞ ``eps`` wider than ``upper − lower`` (see `threat_set`).
        early_stop: stop attacking an example early (named attacks only; see
            `minimax.attacks.early_stop_rule`): PGD once its iterates cycle (nothing lost), the
            others once misclassified or when their loss stalls (a stated number of iterations
            without an increase).
        return_adversarial: also keep each example's worst input (`Evaluation.adversarial`,
            on CPU: as much memory as the data).

    Every candidate of every attack costs one forward to check (which also finds the worst
    input); nothing is re-run.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    batch_size = checks.integer("batch_size", batch_size, minimum=1)
    dev_arg = None if device is None else checks.device("device", device)
    S = threat_set(norm, eps, lower, upper, allow_large_eps=allow_large_eps)
    solvers = {
        label: build_attack(
            a, eps, steps=steps, restarts=restarts, seed=seed, early_stop=early_stop
        )
        for label, a in _labelled(attacks).items()
    }
    if dev_arg is not None:
        model.to(dev_arg)
    dev = next(iter(model.parameters()), torch.empty(0)).device
    parts = _Parts(_Cost(["clean", *solvers]))
    with model_mode(model, mode):
        problem = ModuleProblem(model, perturbation=S)
        classes: int | None = None
        for x, y in _batches(data, batch_size):
            x = checks.float_tensor("x", x).to(dev)
            y = checks.labels("y", y, x.shape[0] if x.ndim else None).to(dev)
            clean_out = None
            if classes is None:  # the model's output against the labels, once
                clean_out = classifier_logits(problem, x, y, (lower, upper))
                classes = int(clean_out.shape[1])
            elif y.numel() and int(y.max()) >= classes:
                raise ValueError(
                    f"the labels y go up to {int(y.max())} but the model returns {classes} "
                    "logits per example: it needs one output per class, or the labels are wrong"
                )
            found = _evaluate_batch(
                problem, (x, y), solvers, cascade, parts.cost, return_adversarial, clean_out
            )
            parts.add(x, *found)
    if not parts.clean:
        raise ValueError("data yielded no batches")
    return parts.evaluation(
        eps=float(eps), norm=str(norm).lower(), cascade=bool(cascade), mode=mode
    )
