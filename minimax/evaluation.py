"""`Evaluation`: what `minimax.evaluate` measured, per example and per attack, with its costs.

Public: `Evaluation` (accuracies, per-example flags and logits, wall and CPU seconds, passes and
throughput per attack; `Evaluation.cat` joins chunks). The accumulators `evaluate` fills batch by
batch live here too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from minimax.engine import engine_of
from minimax.problem import ModuleProblem

__all__ = ["Evaluation"]


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
    seconds: {attack: wall time} (``"clean"`` for the clean pass); cpu_seconds: the same in
        this process's CPU time.
    passes: {attack: {"forward": n, "backward": n}} the passes over the examples each attack
        ran on (a pass over any number of examples counts one; the forward that checks each
        candidate included).
    attacked: {attack: examples it ran on} (``"clean"``: all of them).
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
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    passes: dict[str, dict[str, int]] = field(default_factory=dict)
    attacked: dict[str, int] = field(default_factory=dict)

    def images_per_second(self, cpu: bool = False) -> dict[str, float]:
        """{attack: examples it ran on per second of its wall (``cpu=True``: CPU) time}."""
        times = self.cpu_seconds if cpu else self.seconds
        return {k: self.attacked.get(k, 0) / max(t, 1e-12) for k, t in times.items()}

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
            "cpu_seconds": dict(self.cpu_seconds),
            "passes": {k: dict(v) for k, v in self.passes.items()},
            "attacked": dict(self.attacked),
            "images_per_second": self.images_per_second(),
        }

    @staticmethod
    def cat(parts: Sequence[Evaluation]) -> Evaluation:
        """One evaluation of consecutive chunks of data evaluated alike (the same attacks, ε,
        norm, cascade and mode): per-example results concatenated, accuracies over them,
        seconds, passes and counts summed. Chunks whose attacks continue one random stream (the
        same solver instances, batches aligned) give the evaluation of the whole data bitwise."""
        if not parts:
            raise ValueError("Evaluation.cat needs at least one part")
        first = parts[0]
        same = ("attacks", "eps", "norm", "cascade", "mode")
        for part in parts[1:]:
            differ = [f for f in same if getattr(part, f) != getattr(first, f)]
            if differ:
                raise ValueError(f"Evaluation.cat: the parts differ in {differ}")
        total = _Parts(_Cost(list(first.seconds)))
        for part in parts:
            total.cost.absorb(part)
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


class _Cost:
    """Wall and CPU seconds, passes and examples per label ("clean" and each attack)."""

    def __init__(self, labels: list[str]) -> None:
        self.seconds = dict.fromkeys(labels, 0.0)
        self.cpu_seconds = dict.fromkeys(labels, 0.0)
        self.passes = {k: {"forward": 0, "backward": 0} for k in labels}
        self.attacked = dict.fromkeys(labels, 0)

    @contextlib.contextmanager
    def timing(self, label: str, problem: ModuleProblem, examples: int) -> Iterator[None]:
        """Add the time and passes spent inside to ``label``, run on ``examples``."""
        counter = engine_of(problem).passes
        f0, b0 = counter.snapshot()
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        self.seconds[label] += time.perf_counter() - t0
        self.cpu_seconds[label] += time.process_time() - c0
        f1, b1 = counter.snapshot()
        self.passes[label]["forward"] += f1 - f0
        self.passes[label]["backward"] += b1 - b0
        self.attacked[label] += examples

    def absorb(self, part: Evaluation) -> None:
        """Add another evaluation's costs."""
        for label in self.seconds:
            self.seconds[label] += part.seconds.get(label, 0.0)
            self.cpu_seconds[label] += part.cpu_seconds.get(label, 0.0)
            for kind in ("forward", "backward"):
                self.passes[label][kind] += part.passes.get(label, {}).get(kind, 0)
            self.attacked[label] += part.attacked.get(label, 0)

    def fields(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "passes": self.passes,
            "attacked": self.attacked,
        }


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


@dataclass
class _Parts:
    """The per-batch results of `evaluate`, concatenated into an `Evaluation` at the end."""

    cost: _Cost
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
        labels = [a for a in self.cost.seconds if a != "clean"]
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
            **self.cost.fields(),
            **fields,
        )
