"""Robust-accuracy evaluation of an image classifier: `minimax.evaluate` under named attacks, plus
the calibration numbers and the RobustBench record that ``minimax evaluate`` reports.

Public API::

    evaluate(model, data, *, eps, attacks=DEFAULT_ATTACKS, restarts=1, batch_size=256, seed=0,
             device="cpu", norm="linf", progress=False, cascade=False, dataset=None) -> dict
    parse_attacks(spec) -> list[str]                  (suites expanded, ``clean`` first)
    make_attack(name, eps, restarts=1, seed=0) -> minimax.InnerSolver | None   (None: "clean")
    expected_calibration_error(confidence [N], correct [N], bins=15) -> float

Attack names: ``"clean"``; any name of `minimax.ATTACKS` (``pgd``, ``fgsm``, ``apgd-ce``,
``apgd-dlr``, ``apgd-t``, ``fab-t``, ``square``), optionally followed by a step count (``pgd20``,
``apgd-ce50``, ``square1000``: queries for Square; FGSM takes none); or a suite of
`minimax.SUITES`: ``standard`` (APGD-CE, APGD-T, FAB-T, Square: AutoAttack's standard suite),
``fast`` (the same without FAB-T) or ``first-two`` (APGD-CE and targeted APGD-T).
An example counts as robust to an attack when it is classified correctly at the clean input and
at every restart's result; the worst case per example is taken across all the attacks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import minimax

__all__ = [
    "DEFAULT_ATTACKS",
    "FIRST_TWO",
    "evaluate",
    "expected_calibration_error",
    "make_attack",
    "parse_attacks",
]

DEFAULT_ATTACKS: tuple[str, ...] = ("clean", "standard")
#: AutoAttack's first two attacks: APGD-CE and the targeted APGD-T (not the untargeted APGD-DLR)
FIRST_TWO: tuple[str, ...] = minimax.SUITES["first-two"]
_NAME = re.compile(r"^([a-z][a-z-]*?)(\d+)$")  # family, then a step count: apgd-ce50
_NO_STEPS = ("fgsm",)  # one step of size ε by definition


def _split_name(name: str) -> tuple[str, int | None]:
    """``"pgd20"`` → ("pgd", 20); ``"apgd-t"`` → ("apgd-t", None); unknown → ValueError."""
    if name in minimax.ATTACKS:
        return minimax.ATTACKS.canonical(name), None
    m = _NAME.match(name)
    if m and m.group(1) in minimax.ATTACKS and m.group(1) not in _NO_STEPS:
        steps = int(m.group(2))
        if steps < 1:
            raise ValueError(f"{name}: {m.group(1)} needs at least 1 step")
        return minimax.ATTACKS.canonical(m.group(1)), steps
    raise ValueError(
        f"unknown attack {name!r}: use clean, a suite ({', '.join(minimax.SUITES)}) or one of "
        f"{', '.join(minimax.ATTACKS.names())}, optionally with a step count (pgd20, apgd-ce50; "
        "not fgsm)"
    )


def parse_attacks(spec: str | Sequence[str]) -> list[str]:
    """``"clean,standard"``, ``"pgd20,apgd-ce"`` or a list → validated attack names, suites
    expanded, duplicates dropped, ``clean`` first if present."""
    names = [a.strip().lower() for a in (spec.split(",") if isinstance(spec, str) else spec)]
    expanded: list[str] = []
    for name in (a for a in names if a):
        expanded.extend(minimax.SUITES.get(name, (name,)))
    if not expanded:
        raise ValueError("no attack given: e.g. clean,standard or clean,pgd20,apgd-ce")
    for name in expanded:
        if name != "clean":
            _split_name(name)
    return sorted(dict.fromkeys(expanded), key=lambda a: a != "clean")


def suite_of(names: Sequence[str]) -> str | None:
    """The `minimax.SUITES` name whose attacks are exactly ``names`` (``clean`` aside), or None."""
    attacks = [a for a in names if a != "clean"]
    return next((s for s, members in minimax.SUITES.items() if list(members) == attacks), None)


def make_attack(
    name: str, eps: float, restarts: int = 1, seed: int = 0
) -> minimax.InnerSolver | None:
    """The inner solver (from `minimax.ATTACKS`) for an attack name (None for ``"clean"``)."""
    if name == "clean":
        return None
    family, steps = _split_name(name)
    return minimax.build_attack(family, eps, steps=steps, restarts=restarts, seed=seed)


def calibration_bins(confidence: Tensor, correct: Tensor, bins: int = 15) -> list[list[float]]:
    """Per confidence bin (the bins of `expected_calibration_error`): [Σ correct, Σ confidence,
    count], each a list of ``bins`` floats. Sums over shards add up, so the ECE of a sharded
    evaluation is exact (`ece_from_bins`); they are also a reliability diagram's data."""
    conf = confidence.double().clamp(0, 1)
    index = (conf * bins).long().clamp(max=bins - 1)
    sums = torch.zeros(3, bins, dtype=torch.float64, device=conf.device)
    sums[0].index_add_(0, index, correct.double())
    sums[1].index_add_(0, index, conf)
    sums[2].index_add_(0, index, torch.ones_like(conf))
    return sums.tolist()


def ece_from_bins(bins: Sequence[Sequence[float]]) -> float:
    """ECE from `calibration_bins` (possibly summed over shards): Σ_b |Σ correct − Σ conf| / N,
    which is Σ_b (n_b / N)·|acc_b − conf_b|."""
    correct, conf, count = (torch.tensor(row, dtype=torch.float64) for row in bins)
    n = float(count.sum())
    return math.nan if n == 0 else float((correct - conf).abs().sum()) / n


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins: Σ_b (n_b / N)·|acc_b − conf_b|.

    confidence [N] (max softmax probability), correct [N] bool; bin b = ⌊conf · bins⌋, the top
    bin holding conf = 1 too (`calibration_bins`). NaN for N = 0.
    """
    return ece_from_bins(calibration_bins(confidence, correct, bins))


@dataclass
class _Tracker:
    """Per-example outcomes beside `minimax.evaluate`: each attack's correctness [N] and the
    confidence at each example's worst input (a misclassifying one if any, else the highest
    loss), for the calibration numbers and AutoAttack's first two.

    ``begin`` opens a batch (x [B, ...], its clean logits); the attacks wrapped by `_Tracked`
    then report the candidates they found for the rows `minimax.evaluate` attacked: the
    clean-correct rows, or with ``cascade`` the rows still robust.
    """

    cascade: bool
    labels: list[str]
    clean_correct: list[Tensor] = field(default_factory=list)
    clean_conf: list[Tensor] = field(default_factory=list)
    worst_conf: list[Tensor] = field(default_factory=list)
    worst_correct: list[Tensor] = field(default_factory=list)
    correct: dict[str, list[Tensor]] = field(default_factory=dict)
    _x: Tensor | None = None
    _key: Tensor | None = None
    _robust: Tensor | None = None

    def begin(self, x: Tensor, y: Tensor, logits: Tensor) -> None:
        prob = logits.double().softmax(-1)
        ok = logits.argmax(-1) == y
        self._x, self._robust = x, ok.clone()
        self._key = torch.full_like(prob[:, 0], -math.inf)
        self.clean_correct.append(ok.cpu().clone())
        self.clean_conf.append(prob.max(-1).values.cpu())
        self.worst_conf.append(self.clean_conf[-1].clone())
        self.worst_correct.append(ok.cpu().clone())
        for label in self.labels:  # rows no attack reaches stay False: not robust
            self.correct.setdefault(label, []).append(torch.zeros_like(self.worst_correct[-1]))

    def report(
        self, label: str, problem: minimax.ModuleProblem, x: Tensor, y: Tensor, deltas: Tensor
    ) -> None:
        """The candidates deltas [m, b, ...] an attack found for the attacked rows x [b, ...]."""
        assert self._x is not None and self._robust is not None and self._key is not None
        base = self._robust if self.cascade else self.clean_correct[-1].to(self._x.device)
        rows = torch.nonzero(base).squeeze(1)
        if rows.numel() != x.shape[0] or not torch.equal(self._x[rows], x):
            raise RuntimeError("evaluation: the attacked rows are not the ones expected")
        params = problem.parameters()
        ok = torch.ones_like(y, dtype=torch.bool)
        worst_conf, worst_ok = self.worst_conf[-1], self.worst_correct[-1]
        with torch.no_grad():
            for d in deltas:
                out = problem.outputs(params, d, (x, y))
                ok_i = out.argmax(-1) == y
                ok &= ok_i
                loss = nn.functional.cross_entropy(out.double(), y, reduction="none")
                key = loss.clamp(-1e6, 1e6) + 1e7 * (~ok_i).double()
                better = key > self._key[rows]
                self._key[rows] = torch.where(better, key, self._key[rows])
                idx = rows[better].cpu()
                worst_conf[idx] = out.double().softmax(-1).max(-1).values[better].cpu()
                worst_ok[idx] = ok_i[better].cpu()
        column = torch.zeros_like(self._robust)
        column[rows] = ok
        self._robust &= column
        self.correct[label][-1] = column.cpu()


class _Tracked(minimax.InnerSolver):
    """An attack that reports what it found to a `_Tracker`; its repr is its CLI name."""

    def __init__(self, label: str, solver: minimax.InnerSolver, tracker: _Tracker) -> None:
        super().__init__(restarts=solver.restarts, random_start=solver.random_start)
        self.label, self.solver, self.tracker = label, solver, tracker

    def search(
        self, problem: Any, params: Any, batch: Any, generator: Any, *, keep_graph: bool = False
    ) -> minimax.Candidates:
        found = self.solver(problem, params, batch, generator=generator)
        self.tracker.report(self.label, problem, batch[0], batch[1], found.deltas)
        return found

    def __repr__(self) -> str:
        return self.label


def _batches(
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    batch_size: int,
    device: torch.device,
    tracker: _Tracker,
    progress: bool,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches on ``device`` in the model's dtype (uint8 images scaled to [0, 1]); each one is
    opened in ``tracker`` with its clean logits first."""
    x_all, y_all = data
    dtype = next(model.parameters()).dtype
    starts = range(0, int(x_all.shape[0]), batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        x, y = x_all[start : start + batch_size], y_all[start : start + batch_size].to(device)
        x = (x.float() / 255.0 if not x.is_floating_point() else x).to(device, dtype)
        with torch.no_grad():
            tracker.begin(x, y, model(x))
        yield x, y


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
    cascade: bool = False,
    dataset: str | None = None,
    allow_large_eps: bool = False,
) -> dict[str, Any]:
    """Clean and robust accuracy of ``model`` (in eval mode) on ``data``, by `minimax.evaluate`.

    Args:
        model: classifier [B, ...] in [0, 1] → logits [B, C]; moved to ``device``.
        data: images [N, ...] (float in [0, 1] or uint8) and labels int64 [N].
        eps: the radius of the ``norm`` ball (x + δ stays in [0, 1]).
        attacks: names or suites (see the module docstring) or a comma-separated string.
        restarts: random restarts per attack; robust = correct at every restart.
        cascade: AutoAttack's logic, each attack only on the examples still robust (then
            ``robust_acc`` holds the running numbers); False: each attack on every clean-correct
            example (``robust_acc`` is each attack's own accuracy).
        dataset: the data set's name; when given, the result holds the RobustBench record.
        allow_large_eps: accept an L∞ eps over 1, the whole pixel range (`minimax.threat_set`).

    Returns:
        a JSON-able dict: ``clean_acc``, ``robust_acc`` {attack: accuracy},
        ``worst_case_acc`` (correct under every attack), ``autoattack_first_two`` (correct under
        APGD-CE and the targeted APGD-T, any step counts; None unless both ran),
        ``clean_confidence`` / ``clean_ece`` and ``adversarial_confidence`` /
        ``adversarial_ece`` (at each example's worst input; 15 bins), ``calibration_bins``
        {"clean", "adversarial"} (their per-bin sums, `calibration_bins`), ``eps``, ``norm``,
        ``threat_model`` ("Linf"/"L2"), ``suite``, ``cascade``, ``n_examples``, ``restarts``,
        ``attacks``, ``seconds`` {attack: seconds}; with ``dataset`` also ``dataset`` and
        ``robustbench`` (`minimax.robustbench_record`).
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
    model.to(device)
    tracker = _Tracker(cascade=cascade, labels=[a for a in names if a != "clean"])
    solvers = [_Tracked(a, s, tracker) for a in names if (s := make_attack(a, eps, restarts, seed))]
    batches = _batches(model, (x_all, y_all), batch_size, device, tracker, progress)
    with minimax.model_mode(model, "eval"):
        if solvers:
            result = minimax.evaluate(
                model,
                batches,
                eps=eps,
                norm=norm,  # type: ignore[arg-type]
                attacks=solvers,
                cascade=cascade,
                mode="eval",
                allow_large_eps=allow_large_eps,
            )
        else:
            for _ in batches:  # clean accuracy only
                pass
            result = None
    summary = _summary(tracker, result)
    summary.update(
        eps=float(eps),
        norm=norm,
        threat_model=_THREAT[norm],
        suite=suite_of(names),
        cascade=cascade,
        n_examples=n,
        restarts=restarts,
        attacks=names,
        seconds=result.seconds if result else {"clean": 0.0},
    )
    if dataset is not None and result is not None:
        summary.update(
            dataset=dataset, robustbench=minimax.robustbench_record(result, dataset=dataset)
        )
    elif dataset is not None:
        summary.update(dataset=dataset, robustbench=None)
    return summary


_THREAT = {"linf": "Linf", "l2": "L2"}


def _summary(tracker: _Tracker, result: minimax.Evaluation | None) -> dict[str, Any]:
    """The accuracy, worst-case and calibration fields of `evaluate`'s result."""
    clean = torch.cat(tracker.clean_correct)
    correct = {a: torch.cat(v) for a, v in tracker.correct.items()}
    worst_case = result.robust if result is not None else clean
    if result is not None and not torch.equal(worst_case, clean & _all(correct, clean)):
        raise RuntimeError("evaluation: minimax.evaluate and the per-attack outcomes disagree")
    first_two = None
    family = {a: _split_name(a)[0] for a in correct}  # apgd-ce50 is an APGD-CE too
    pair = [next((a for a in correct if family[a] == f), None) for f in FIRST_TWO]
    if all(pair):
        both = clean & _all({a: correct[a] for a in pair if a}, clean)
        first_two = float(both.double().mean())
    conf, worst_conf = torch.cat(tracker.clean_conf), torch.cat(tracker.worst_conf)
    clean_bins = calibration_bins(conf, clean)
    worst_bins = None
    if result is not None:
        worst_bins = calibration_bins(worst_conf, torch.cat(tracker.worst_correct))
    return {
        "clean_acc": float(clean.double().mean()),
        "robust_acc": dict(result.per_attack) if result is not None else {},
        "worst_case_acc": float(worst_case.double().mean()),
        "autoattack_first_two": first_two,
        "clean_confidence": float(conf.mean()),
        "clean_ece": ece_from_bins(clean_bins),
        "adversarial_confidence": float(worst_conf.mean()) if result is not None else None,
        "adversarial_ece": ece_from_bins(worst_bins) if worst_bins is not None else None,
        "calibration_bins": {"clean": clean_bins, "adversarial": worst_bins},
    }


def _all(correct: dict[str, Tensor], like: Tensor) -> Tensor:
    out = torch.ones_like(like)
    for column in correct.values():
        out &= column
    return out
