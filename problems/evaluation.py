"""Robust-accuracy evaluation of an image classifier: `minimax.evaluate` under named attacks, plus
the calibration numbers and the RobustBench record that ``minimax evaluate`` reports.

Public API::

    evaluate(model, data, *, eps, attacks=DEFAULT_ATTACKS, restarts=1, batch_size=256, seed=0,
             device="cpu", norm="linf", progress=False, cascade=False, dataset=None,
             progress_file=None, resume=False, chunk=4096) -> dict
    parse_attacks(spec) -> list[str]                  (suites expanded, ``clean`` first)
    make_attack(name, eps, restarts=1, seed=0) -> InnerSolver | None   (None: "clean")
    expected_calibration_error(confidence [N], correct [N], bins=15) -> float

Attack names: ``"clean"``; any name of `minimax.extend.ATTACKS` (``pgd``, ``fgsm``, ``apgd-ce``,
``apgd-dlr``, ``apgd-t``, ``fab-t``, ``square``), optionally followed by a step count (``pgd20``,
``apgd-ce50``, ``square1000``: queries for Square; FGSM takes none); or a suite of
`minimax.extend.SUITES`: ``standard`` (APGD-CE, APGD-T, FAB-T, Square: AutoAttack's standard suite),
``fast`` (the same without FAB-T) or ``first-two`` (APGD-CE and targeted APGD-T).
An example counts as robust to an attack when it is classified correctly at the clean input and
at every restart's result; the worst case per example is taken across all the attacks.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import minimax
from minimax import checks
from minimax import extend as ext

from .resumable import evaluate_in_chunks

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
FIRST_TWO: tuple[str, ...] = minimax.extend.SUITES["first-two"]
_NAME = re.compile(r"^([a-z][a-z-]*?)(\d+)$")  # family, then a step count: apgd-ce50
_NO_STEPS = ("fgsm",)  # one step of size ε by definition


def _split_name(name: str) -> tuple[str, int | None]:
    """``"pgd20"`` → ("pgd", 20); ``"apgd-t"`` → ("apgd-t", None); unknown → ValueError."""
    if name in minimax.extend.ATTACKS:
        return minimax.extend.ATTACKS.canonical(name), None
    m = _NAME.match(name)
    if m and m.group(1) in minimax.extend.ATTACKS and m.group(1) not in _NO_STEPS:
        steps = int(m.group(2))
        if steps < 1:
            raise ValueError(f"{name}: {m.group(1)} needs at least 1 step")
        return minimax.extend.ATTACKS.canonical(m.group(1)), steps
    raise ValueError(
        f"unknown attack {name!r}: use clean, a suite ({', '.join(ext.SUITES)}) or one of "
        f"{', '.join(ext.ATTACKS.names())}, optionally with a step count (pgd20, apgd-ce50; "
        "not fgsm)"
    )


def parse_attacks(spec: str | Sequence[str]) -> list[str]:
    """``"clean,standard"``, ``"pgd20,apgd-ce"`` or a list → validated attack names, suites
    expanded, duplicates dropped, ``clean`` first if present."""
    names = [a.strip().lower() for a in (spec.split(",") if isinstance(spec, str) else spec)]
    expanded: list[str] = []
    for name in (a for a in names if a):
        expanded.extend(minimax.extend.SUITES.get(name, (name,)))
    if not expanded:
        raise ValueError("no attack given: e.g. clean,standard or clean,pgd20,apgd-ce")
    for name in expanded:
        if name != "clean":
            _split_name(name)
    return sorted(dict.fromkeys(expanded), key=lambda a: a != "clean")


def suite_of(names: Sequence[str]) -> str | None:
    """The `minimax.extend.SUITES` name whose attacks are exactly ``names`` (``clean`` aside),
    or None."""
    attacks = [a for a in names if a != "clean"]
    return next(
        (s for s, members in minimax.extend.SUITES.items() if list(members) == attacks), None
    )


def make_attack(
    name: str, eps: float, restarts: int = 1, seed: int = 0
) -> minimax.extend.InnerSolver | None:
    """The inner solver (from `minimax.extend.ATTACKS`) for an attack name (None for
    ``"clean"``)."""
    if name == "clean":
        return None
    family, steps = _split_name(name)
    return minimax.extend.build_attack(family, eps, steps=steps, restarts=restarts, seed=seed)


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


def _batches(
    data: tuple[Tensor, Tensor],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    progress: bool,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches on ``device`` in ``dtype`` (uint8 images scaled to [0, 1])."""
    x_all, y_all = data
    starts = range(0, int(x_all.shape[0]), batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        x, y = x_all[start : start + batch_size], y_all[start : start + batch_size].to(device)
        yield (x.float() / 255.0 if not x.is_floating_point() else x).to(device, dtype), y


def _clean_logits(model: nn.Module, batches: Iterator[tuple[Tensor, Tensor]]) -> Tensor:
    """[N, C] the model's outputs on every batch (no attack ran: the clean accuracy only)."""
    with torch.no_grad():
        return torch.cat([model(x).cpu() for x, _ in batches])


# long: its docstring states each of the 15 options and every key of the result
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
    progress_file: str | os.PathLike[str] | None = None,
    resume: bool = False,
    chunk: int = 4096,
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
        allow_large_eps: accept an L∞ eps over 1, the whole pixel range
            (`minimax.extend.threat_set`).
        progress_file: write the progress there (atomically) after every ``chunk`` examples
            (rounded up to whole batches); with ``resume`` continue from it: the same result,
            bitwise (`problems.resumable`). None: one pass, no file.

    Returns:
        a JSON-able dict: ``clean_acc``, ``robust_acc`` {attack: accuracy},
        ``worst_case_acc`` (correct under every attack), ``autoattack_first_two`` (correct under
        APGD-CE and the targeted APGD-T, any step counts; None unless both ran),
        ``clean_confidence`` / ``clean_ece`` and ``adversarial_confidence`` /
        ``adversarial_ece`` (at each example's worst input; 15 bins), ``calibration_bins``
        {"clean", "adversarial"} (their per-bin sums, `calibration_bins`), ``eps``, ``norm``,
        ``threat_model`` ("Linf"/"L2"), ``suite``, ``cascade``, ``n_examples``, ``restarts``,
        ``attacks``, ``seconds`` {attack: seconds}; with ``dataset`` also ``dataset`` and
        ``robustbench`` (`minimax.extend.robustbench_record`).
    """
    names = parse_attacks(attacks)
    eps = checks.real_number("eps", eps, nonnegative=True)
    restarts = checks.integer("restarts", restarts, minimum=1)
    x_all, y_all = data
    n = int(x_all.shape[0])
    if n == 0 or y_all.shape[0] != n:
        raise ValueError(f"data has {n} images and {y_all.shape[0]} labels (need N ≥ 1, equal)")
    device = torch.device(device)
    model.to(device)
    solvers = {a: s for a in names if (s := make_attack(a, eps, restarts, seed)) is not None}
    dtype = next(model.parameters()).dtype

    def batches(x: Tensor, y: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        return _batches((x, y), batch_size, device, dtype, progress)

    options: dict[str, Any] = dict(
        eps=eps, norm=norm, cascade=cascade, mode="eval", allow_large_eps=allow_large_eps
    )
    resumable = None
    if progress_file is not None:
        settings = dict(attacks=names, restarts=restarts, seed=seed, **options)
        resumable = dict(path=Path(progress_file), resume=resume, chunk=chunk, settings=settings)
    clean_logits, result = _attacked(model, data, solvers, batches, options, resumable, batch_size)
    summary = _summary(y_all.cpu(), clean_logits, result)
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
            dataset=dataset, robustbench=minimax.extend.robustbench_record(result, dataset=dataset)
        )
    elif dataset is not None:
        summary.update(dataset=dataset, robustbench=None)
    return summary


def _attacked(
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    solvers: dict[str, Any],
    batches: Callable[[Tensor, Tensor], Iterator[tuple[Tensor, Tensor]]],
    options: dict[str, Any],
    resumable: dict[str, Any] | None,
    batch_size: int,
) -> tuple[Tensor, minimax.Evaluation | None]:
    """The clean logits [N, C] and the attacks' `minimax.Evaluation` (None without attacks),
    in one pass or chunk by chunk (``resumable``: path, resume, chunk and settings of
    `problems.resumable.evaluate_in_chunks`)."""
    x_all, y_all = data
    with minimax.extend.model_mode(model, "eval"):
        if not solvers:
            return _clean_logits(model, batches(x_all, y_all)), None
        if resumable is None:
            result = minimax.evaluate(model, batches(x_all, y_all), attacks=solvers, **options)
        else:
            result = evaluate_in_chunks(
                model,
                (x_all, y_all),
                solvers,
                batches=batches,
                batch_size=batch_size,
                **resumable,
                **options,
            )
    return result.clean_logits, result


_THREAT = {"linf": "Linf", "l2": "L2"}


def _summary(y: Tensor, clean_logits: Tensor, result: minimax.Evaluation | None) -> dict[str, Any]:
    """The accuracy, worst-case and calibration fields of `evaluate`'s result, from the labels
    y [N], the clean outputs [N, C] and `minimax.evaluate`'s per-example results."""
    clean = clean_logits.argmax(-1) == y
    conf = clean_logits.double().softmax(-1).max(-1).values
    clean_bins = calibration_bins(conf, clean)
    out: dict[str, Any] = {
        "clean_acc": float(clean.double().mean()),
        "robust_acc": {},
        "worst_case_acc": float(clean.double().mean()),
        "autoattack_first_two": None,
        "clean_confidence": float(conf.mean()),
        "clean_ece": ece_from_bins(clean_bins),
        "adversarial_confidence": None,
        "adversarial_ece": None,
        "calibration_bins": {"clean": clean_bins, "adversarial": None},
    }
    if result is None:
        return out
    correct = result.correct
    family = {a: _split_name(a)[0] for a in correct}  # apgd-ce50 is an APGD-CE too
    pair = [next((a for a in correct if family[a] == f), None) for f in FIRST_TWO]
    if all(pair):
        both = clean & _all({a: correct[a] for a in pair if a}, clean)
        out["autoattack_first_two"] = float(both.double().mean())
    worst_conf = result.worst_logits.double().softmax(-1).max(-1).values
    worst_bins = calibration_bins(worst_conf, result.worst_logits.argmax(-1) == y)
    out.update(
        robust_acc=dict(result.per_attack),
        worst_case_acc=float(result.robust.double().mean()),
        adversarial_confidence=float(worst_conf.mean()),
        adversarial_ece=ece_from_bins(worst_bins),
        calibration_bins={"clean": clean_bins, "adversarial": worst_bins},
    )
    return out


def _all(correct: dict[str, Tensor], like: Tensor) -> Tensor:
    out = torch.ones_like(like)
    for column in correct.values():
        out &= column
    return out
