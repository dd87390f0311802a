"""The hypotheses of the worst-group comparison, each with the test that decides it, stated in
docs/reproducing.md before the committed run; their decision functions read the comparison's
JSON (`problems.worstgroup.compare.compare`) and nothing else.

A hypothesis is decided in each setting it applies to (a data set × a model × a batch mode) and
holds as a whole only if it holds in every one of them. Every paired interval is DDi − other
over the seeds (95% t-interval, `problems.stats.paired_difference`).

- **H1** DDi reaches a lower worst-group training loss than Danskin and than Group DRO at equal
  passes: both paired intervals lie below 0.
- **H2** DDi's worst-group test accuracy is no worse than Group DRO's: the paired interval's lower
  end is above −`DELTA` (one point of accuracy).
- **H3** On Adult, the group-balanced trees reach a higher worst-group test accuracy than DDi:
  the interval DDi − trees lies below 0 (Adult's settings only).
- **H4** The certified step never lets the objective go up: in every run, no DDi step raised the
  worst-group loss of its batch.
- **H5** H1 survives equal CPU time: the worst-group training loss at the CPU time of the seed's
  fastest rule, DDi − Danskin and DDi − Group DRO, both below 0.
- **H6** Ties are the norm on MNIST-1D and not on Adult: DDi's direction combines, on average per
  step, more than `TIE_GROUPS` groups on MNIST-1D (the interval's lower end above it) and fewer on
  Adult (its upper end below it).

Public API::

    HYPOTHESES: name → statement;  TESTS: name → its decision test;  DELTA, TIE_GROUPS
    decide(name, results) -> {"name", "statement", "held", "cells": [{dataset, setting, held,
                                                                      detail}]}
    decide_all(results) -> list of the above, H1..H6
    changed_verdicts(results, other) -> list[str]   the verdicts that differ between two runs

``results`` maps a data set's name to its comparison JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DELTA", "HYPOTHESES", "TESTS", "TIE_GROUPS", "changed_verdicts", "decide", "decide_all"]

#: H2's margin: one point of worst-group test accuracy
DELTA = 0.01
#: H6's threshold: groups with positive weight in DDi's direction, mean per step
TIE_GROUPS = 1.5

HYPOTHESES: dict[str, str] = {
    "H1": "DDi reaches a lower worst-group training loss than Danskin and than Group DRO at "
    "equal passes",
    "H2": f"DDi's worst-group test accuracy is no worse than Group DRO's by more than {DELTA:g}",
    "H3": "on Adult, group-balanced trees reach a higher worst-group test accuracy than DDi",
    "H4": "the certified step never lets the worst-group loss of its batch go up",
    "H5": "at equal CPU time, DDi's worst-group training loss is lower than Danskin's and than "
    "Group DRO's",
    "H6": f"DDi's direction combines more than {TIE_GROUPS:g} groups per step on MNIST-1D and "
    "fewer on Adult",
}

#: name → the test that decides it in one setting (DDi − other, paired over seeds, 95% t-interval)
TESTS: dict[str, str] = {
    "H1": "worst-group training loss at the end: the intervals of DDi − Danskin and DDi − Group "
    "DRO both lie below 0",
    "H2": f"worst-group test accuracy: the interval of DDi − Group DRO has its lower end above "
    f"−{DELTA:g}",
    "H3": "worst-group test accuracy: the interval of DDi − trees lies below 0 (Adult only)",
    "H4": "no run has a DDi step after which the worst-group loss of the step's batch rose",
    "H5": "worst-group training loss at the CPU time of the seed's fastest rule: the intervals "
    "of DDi − Danskin and DDi − Group DRO both lie below 0",
    "H6": f"groups with positive weight in DDi's direction, mean per step: the 95% interval lies "
    f"above {TIE_GROUPS:g} on MNIST-1D, below it on Adult",
}

Cell = tuple[bool, str]


def _interval(entry: Mapping[str, Any], fmt: str = "+.3f") -> str:
    if entry.get("low") is None:
        return f"{entry['mean']:{fmt}} (no interval)"
    return f"{entry['mean']:{fmt}} [{entry['low']:{fmt}}, {entry['high']:{fmt}}]"


def _below_zero(entry: Mapping[str, Any]) -> bool:
    return entry.get("high") is not None and entry["high"] < 0 and entry.get("p") is not None


def _lower_loss(block: Mapping[str, Any], metric: str) -> Cell:
    paired = block["paired"]
    held = all(_below_zero(paired[o][metric]) for o in ("danskin", "group_dro"))
    detail = (
        f"DDi − Danskin {_interval(paired['danskin'][metric])}, "
        f"DDi − Group DRO {_interval(paired['group_dro'][metric])}"
    )
    return held, detail


def _h1(dataset: str, block: Mapping[str, Any]) -> Cell | None:
    return _lower_loss(block, "worst_group_train_loss")


def _h2(dataset: str, block: Mapping[str, Any]) -> Cell | None:
    entry = block["paired"]["group_dro"]["worst_group_test_acc"]
    low = entry.get("low")
    return low is not None and low > -DELTA, f"DDi − Group DRO {_interval(entry)}"


def _h3(dataset: str, block: Mapping[str, Any]) -> Cell | None:
    if dataset != "adult":
        return None
    entry = block["paired"]["trees"]["worst_group_test_acc"]
    return _below_zero(entry), f"DDi − trees {_interval(entry)}"


def _h4(dataset: str, block: Mapping[str, Any]) -> Cell | None:
    fractions = [run["rules"]["ddi"]["went_up_fraction"] for run in block["runs"]]
    worst = max(fractions)
    return worst == 0, f"largest fraction of DDi steps that went up {worst:.3f}"


def _h5(dataset: str, block: Mapping[str, Any]) -> Cell | None:
    return _lower_loss(block, "worst_group_train_loss_at_cpu")


def _h6(dataset: str, block: Mapping[str, Any]) -> Cell | None:
    entry = block["ddi_active_groups"]
    if entry.get("low") is None:
        return False, f"{entry['mean']:.2f} groups (no interval)"
    held = entry["low"] > TIE_GROUPS if dataset == "mnist1d" else entry["high"] < TIE_GROUPS
    return held, f"{_interval(entry, '.2f')} groups"


_DECIDERS: dict[str, Callable[[str, Mapping[str, Any]], Cell | None]] = {
    "H1": _h1,
    "H2": _h2,
    "H3": _h3,
    "H4": _h4,
    "H5": _h5,
    "H6": _h6,
}


def decide(name: str, results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Decide hypothesis ``name`` in every setting of ``results`` it applies to."""
    if name not in _DECIDERS:
        raise ValueError(f"unknown hypothesis {name!r}: choose one of {', '.join(HYPOTHESES)}")
    cells = []
    for dataset, result in results.items():
        for setting, block in result["settings"].items():
            cell = _DECIDERS[name](dataset, block)
            if cell is not None:
                held, detail = cell
                cells.append(
                    {"dataset": dataset, "setting": setting, "held": held, "detail": detail}
                )
    if not cells:
        raise ValueError(f"{name} applies to none of the data sets {sorted(results)}")
    return {
        "name": name,
        "statement": HYPOTHESES[name],
        "held": all(c["held"] for c in cells),
        "cells": cells,
    }


def decide_all(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every hypothesis that applies to ``results``, in order."""
    out = []
    for name in HYPOTHESES:
        try:
            out.append(decide(name, results))
        except ValueError:
            continue  # e.g. H3 without Adult
    return out


def _verdicts(results: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Every verdict of a run: each hypothesis in each setting, and each paired test."""
    out = {}
    for h in decide_all(results):
        for c in h["cells"]:
            out[f"{h['name']} on {c['dataset']} {c['setting']}"] = (
                "held" if c["held"] else "did not hold"
            )
    for dataset, result in results.items():
        for setting, block in result["settings"].items():
            for other, metrics in block["paired"].items():
                for metric, entry in metrics.items():
                    if metric in ("cpu_seconds", "seconds"):
                        continue  # clocks: not a verdict about the rules' results
                    key = f"DDi vs {other}, {metric}, on {dataset} {setting}"
                    out[key] = entry["verdict"]
    return out


def changed_verdicts(
    results: Mapping[str, Mapping[str, Any]], other: Mapping[str, Mapping[str, Any]]
) -> tuple[list[str], int]:
    """The verdicts of ``results`` that read differently in ``other`` ("X: a → b"), and how
    many verdicts were compared (those present in both)."""
    first, second = _verdicts(results), _verdicts(other)
    common = [k for k in first if k in second]
    changed = [f"{k}: {first[k]} → {second[k]}" for k in common if first[k] != second[k]]
    return changed, len(common)
