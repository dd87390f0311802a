"""Robust accuracy of a classifier under a suite of attacks, and its RobustBench-schema record.

    result = minimax.evaluate(model, (x, y), eps=8/255)    # APGD-CE, APGD-T, FAB-T, Square
    print(result.clean_acc, result.robust_acc, result.per_attack)
    minimax.write_robustbench(result, "model.json", dataset="cifar10")

An example counts as robust when the model classifies it correctly at the clean input and at every
candidate of every attack (the worst case per example). With ``cascade=True`` (AutoAttack's
"standard" logic) each attack only runs on the examples still robust after the ones before it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from minimax import checks
from minimax.attacks import (
    SUITES,
    Mode,
    Norm,
    build_attack,
    check_classifier,
    model_mode,
    threat_set,
)
from minimax.engine import engine_of
from minimax.inner import InnerSolver
from minimax.problem import ModuleProblem

__all__ = ["Evaluation", "evaluate", "robustbench_record", "write_robustbench"]


@dataclass
class Evaluation:
    """What `evaluate` measured (accuracies are fractions in [0, 1]).

    clean_acc: accuracy on the clean inputs.
    robust_acc: the worst case per example: correct on the clean input and under every attack.
    per_attack: {attack: accuracy}; with ``cascade`` the accuracy after this attack and the ones
        before it (AutoAttack's running number), else under this attack alone.
    clean, robust: per-example bools [N] behind clean_acc and robust_acc.
    correct: {attack: bools [N]} behind per_attack: correct at the clean input and at every
        candidate of this attack (with ``cascade``, of the attacks before it too); False where
        the attack did not run (clean-misclassified, or with ``cascade`` already broken).
    clean_logits: [N, C] the model's outputs at the clean inputs.
    worst_logits: [N, C] the outputs at each example's worst input: over all the attacks'
        candidates, a misclassifying one if any, else the highest cross entropy (the first
        found on ties); the clean input where no attack ran on the example.
    adversarial: [N, ...] that worst input x + δ, with ``return_adversarial=True`` (else None).
    seconds: {attack: wall time} (``"clean"`` for the clean pass).
    """

    clean_acc: float
    robust_acc: float
    per_attack: dict[str, float]
    attacks: list[str]
    eps: float
    norm: str
    n_examples: int
    cascade: bool
    mode: str
    clean: Tensor = field(repr=False)
    robust: Tensor = field(repr=False)
    correct: dict[str, Tensor] = field(repr=False)
    clean_logits: Tensor = field(repr=False)
    worst_logits: Tensor = field(repr=False)
    adversarial: Tensor | None = field(default=None, repr=False)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of everything but the per-example tensors."""
        return {
            "clean_acc": self.clean_acc,
            "robust_acc": self.robust_acc,
            "per_attack": dict(self.per_attack),
            "attacks": list(self.attacks),
            "eps": self.eps,
            "norm": self.norm,
            "n_examples": self.n_examples,
            "cascade": self.cascade,
            "mode": self.mode,
            "seconds": dict(self.seconds),
        }

    @staticmethod
    def cat(parts: Sequence[Evaluation]) -> Evaluation:
        """One evaluation of consecutive chunks of data evaluated alike (the same attacks, ε,
        norm, cascade and mode): per-example results concatenated, accuracies over them,
        seconds summed. Chunks whose attacks continue one random stream (the same solver
        instances, batches aligned) give the evaluation of the whole data bitwise."""
        if not parts:
            raise ValueError("Evaluation.cat needs at least one part")
        first = parts[0]
        same = ("attacks", "eps", "norm", "cascade", "mode")
        for part in parts[1:]:
            differ = [f for f in same if getattr(part, f) != getattr(first, f)]
            if differ:
                raise ValueError(f"Evaluation.cat: the parts differ in {differ}")
        total = _Parts(dict.fromkeys(first.seconds, 0.0))
        for part in parts:
            for label, sec in part.seconds.items():
                total.seconds[label] += sec
            total.clean.append(part.clean)
            total.robust.append(part.robust)
            for label, flags in part.correct.items():
                total.correct.setdefault(label, []).append(flags)
            total.clean_logits.append(part.clean_logits)
            total.worst_logits.append(part.worst_logits)
            if part.adversarial is not None:
                total.adversarial.append(part.adversarial)
        if 0 < len(total.adversarial) < len(parts):
            raise ValueError("Evaluation.cat: some parts kept their adversarial inputs, some not")
        return total.evaluation(
            eps=first.eps, norm=first.norm, cascade=first.cascade, mode=first.mode
        )


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


@dataclass
class _Worst:
    """Each example's worst input so far, over a batch [B]: its key (cross entropy, plus 10⁷
    when misclassified; −∞ before any attack), outputs [B, C] and δ [B, ...] (when kept)."""

    key: Tensor
    logits: Tensor
    delta: Tensor | None

    def offer(self, rows: Tensor, out: Tensor, ok: Tensor, y: Tensor, delta: Tensor) -> None:
        """A candidate δ [b, ...] for the batch rows ``rows`` [b], its outputs and correctness."""
        loss = nn.functional.cross_entropy(out.double(), y, reduction="none")
        key = loss.clamp(-1e6, 1e6) + 1e7 * (~ok).double()
        better = key > self.key[rows]
        self.key[rows] = torch.where(better, key, self.key[rows])
        self.logits[rows[better]] = out[better]
        if self.delta is not None:
            self.delta[rows[better]] = delta[better]


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
    x: Tensor,
    y: Tensor,
    solvers: dict[str, InnerSolver],
    cascade: bool,
    seconds: dict[str, float],
    keep_delta: bool,
) -> tuple[Tensor, Tensor, dict[str, Tensor], Tensor, _Worst]:
    """One batch: clean-correct [B], robust [B] (worst case), {attack: correct [B]} (after the
    attacks so far with ``cascade``, else under the attack alone), the clean outputs [B, C] and
    the worst inputs (`_Worst`); adds to ``seconds``."""
    t0 = time.perf_counter()
    with torch.no_grad():
        zero = torch.zeros_like(x).unsqueeze(0)
        clean_out = engine_of(problem).logits(problem.parameters(), zero, (x, y))[0]
    clean = clean_out.argmax(-1) == y
    key = torch.full(y.shape, -torch.inf, dtype=torch.float64, device=y.device)
    worst = _Worst(key, clean_out.clone(), torch.zeros_like(x) if keep_delta else None)
    seconds["clean"] += time.perf_counter() - t0
    robust = clean.clone()
    per_attack = {}
    for label, solver in solvers.items():
        t0 = time.perf_counter()
        base = robust if cascade else clean
        rows = torch.nonzero(base).squeeze(1)
        ok = base.clone()
        if rows.numel() > 0:
            sub = (x[rows], y[rows])
            found = solver(problem, problem.parameters(), sub)
            ok[rows] = _scan(problem, *sub, found.deltas, rows, worst)
        robust &= ok
        per_attack[label] = (robust if cascade else ok).cpu()
        seconds[label] += time.perf_counter() - t0
    return clean.cpu(), robust.cpu(), per_attack, clean_out.cpu(), worst


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
        label: build_attack(a, eps, steps=steps, restarts=restarts, seed=seed)
        for label, a in _labelled(attacks).items()
    }
    if dev_arg is not None:
        model.to(dev_arg)
    dev = next(iter(model.parameters()), torch.empty(0)).device
    parts = _Parts(dict.fromkeys(["clean", *solvers], 0.0))
    with model_mode(model, mode):
        problem = ModuleProblem(model, perturbation=S)
        classes: int | None = None
        for x, y in _batches(data, batch_size):
            x = checks.float_tensor("x", x).to(dev)
            y = checks.labels("y", y, x.shape[0] if x.ndim else None).to(dev)
            if classes is None:  # the model's output against the labels, once
                classes = check_classifier(problem, x, y, (lower, upper))
            elif y.numel() and int(y.max()) >= classes:
                raise ValueError(
                    f"the labels y go up to {int(y.max())} but the model returns {classes} "
                    "logits per example: it needs one output per class, or the labels are wrong"
                )
            found = _evaluate_batch(
                problem, x, y, solvers, cascade, parts.seconds, return_adversarial
            )
            parts.add(x, *found)
    if not parts.clean:
        raise ValueError("data yielded no batches")
    return parts.evaluation(
        eps=float(eps), norm=str(norm).lower(), cascade=bool(cascade), mode=mode
    )


@dataclass
class _Parts:
    """The per-batch results of `evaluate`, concatenated into an `Evaluation` at the end."""

    seconds: dict[str, float]
    clean: list[Tensor] = field(default_factory=list)
    robust: list[Tensor] = field(default_factory=list)
    correct: dict[str, list[Tensor]] = field(default_factory=dict)
    clean_logits: list[Tensor] = field(default_factory=list)
    worst_logits: list[Tensor] = field(default_factory=list)
    adversarial: list[Tensor] = field(default_factory=list)

    def add(
        self,
        x: Tensor,
        clean: Tensor,
        robust: Tensor,
        correct: dict[str, Tensor],
        clean_logits: Tensor,
        worst: _Worst,
    ) -> None:
        self.clean.append(clean)
        self.robust.append(robust)
        for label, flags in correct.items():
            self.correct.setdefault(label, []).append(flags)
        self.clean_logits.append(clean_logits)
        self.worst_logits.append(worst.logits.cpu())
        if worst.delta is not None:
            self.adversarial.append((x + worst.delta).detach().cpu())

    def evaluation(self, **fields: Any) -> Evaluation:
        clean, robust = torch.cat(self.clean), torch.cat(self.robust)
        correct = {a: torch.cat(v) for a, v in self.correct.items()}
        labels = [a for a in self.seconds if a != "clean"]
        return Evaluation(
            clean_acc=float(clean.double().mean()),
            robust_acc=float(robust.double().mean()),
            per_attack={a: float(correct[a].double().mean()) for a in labels},
            attacks=labels,
            n_examples=int(clean.numel()),
            clean=clean,
            robust=robust,
            correct={a: correct[a] for a in labels},
            clean_logits=torch.cat(self.clean_logits),
            worst_logits=torch.cat(self.worst_logits),
            adversarial=torch.cat(self.adversarial) if self.adversarial else None,
            seconds=self.seconds,
            **fields,
        )


def _eps_string(eps: float) -> str:
    """RobustBench writes ε as ``"8/255"`` for fractions of 255, else as a number (``"0.5"``)."""
    k = eps * 255
    if 0 < round(k) < 255 and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:g}"


def robustbench_record(result: Evaluation, *, dataset: str, **info: Any) -> dict[str, Any]:
    """The evaluation as a RobustBench ``model_info`` record.

    Percentages rounded to 2 decimals and written as strings (``"clean_acc": "85.34"``), ``eps``
    as RobustBench writes it (``"8/255"``, ``"0.5"``), ``dataset`` (e.g. ``"cifar10"``) and
    ``threat_model`` (``"Linf"`` / ``"L2"``). The robust accuracy goes under ``autoattack_acc``
    when the standard suite (or a superset of it) ran with ``cascade``, else under
    ``robust_acc``; ``footnote`` names the attacks. ``info`` adds RobustBench's descriptive
    fields (``name``, ``link``, ``authors``, ``architecture``, ``venue``, ...).
    """
    if not isinstance(dataset, str) or not dataset:
        raise ValueError("dataset must be a non-empty name, e.g. 'cifar10'")
    standard = set(SUITES["standard"]) <= set(result.attacks) and result.cascade
    key = "autoattack_acc" if standard else "robust_acc"
    note = f"minimax {', '.join(result.attacks)} on {result.n_examples} examples" + (
        " (AutoAttack's standard suite)" if standard else ""
    )
    record: dict[str, Any] = dict(info)
    record.update(
        {
            "dataset": dataset,
            "threat_model": {"linf": "Linf", "l2": "L2"}[result.norm],
            "eps": _eps_string(result.eps),
            "clean_acc": f"{100 * result.clean_acc:.2f}",
            key: f"{100 * result.robust_acc:.2f}",
            "footnote": note,
        }
    )
    return record


def write_robustbench(
    result: Evaluation, path: str | Path, *, dataset: str, **info: Any
) -> dict[str, Any]:
    """Write `robustbench_record` as JSON to ``path``; returns the record.

    Written atomically (a temporary file in the same directory, then renamed: a crash leaves the
    previous file intact), never through a symbolic link at ``path``, with the permissions of a
    plain new file (0666 less the umask). A result holding NaN or Inf is refused."""
    if not isinstance(result, Evaluation):
        raise TypeError(f"result must be an Evaluation (from evaluate), got {type(result)}")
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"path must be a file name, got {path!r}")
    numbers = {"clean_acc": result.clean_acc, "robust_acc": result.robust_acc, "eps": result.eps}
    numbers.update({f"per_attack[{k!r}]": v for k, v in result.per_attack.items()})
    bad = [k for k, v in numbers.items() if not (isinstance(v, float) and math.isfinite(v))]
    if bad:
        raise ValueError(
            f"result holds NaN or Inf in {bad}: refusing to write a RobustBench record of it; "
            "re-run evaluate"
        )
    record = robustbench_record(result, dataset=dataset, **info)
    _write_atomically(Path(path), json.dumps(record, indent=2, allow_nan=False) + "\n")
    return record


def _write_atomically(path: Path, text: str) -> None:
    """``text`` to ``path``: refused through a link or onto a directory; a temporary file next
    to it, fsynced, then renamed over it (the rename replaces a link, never follows it)."""
    if path.is_symlink():
        raise ValueError(
            f"path {str(path)!r} is a symbolic link: refusing to write through it; pass the "
            "real file's path, or remove the link"
        )
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a directory: pass a file name such as x.json")
    if not path.parent.is_dir():
        raise ValueError(f"path {str(path)!r}: its directory does not exist; create it first")
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # 0o666 less the umask, like open(path, "w") (mkstemp would give 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
