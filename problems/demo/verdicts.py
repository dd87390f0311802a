"""Sentences that follow the statistics: a mean with its 95% interval, and the paired difference
DDi − other rule with its interval, paired t-test and the only verdicts the interval allows.

"no significant difference" whenever the 95% interval of the paired difference covers 0, or
there is no interval (one seed) or no test (the same difference on every seed); "DDi
significantly higher/lower" only when it excludes 0. A quick run never states a verdict: it is
too short to compare.

Public API::

    interval_text(entry, fmt) -> str                 "0.712 (95% CI 0.690 to 0.734)"
    verdict_text(entry, quick, subject="DDi") -> str "no significant difference" / "DDi
                                                      significantly higher" / "... lower"
    difference_text(entry, fmt, quick, subject="DDi") -> str
                                                     "+0.012 (95% CI ..., paired t-test p = 0.31):
                                                      no significant difference"
    metric_sentence(label, rules, paired, names, fmt, quick) -> str
    QUICK_NOTE
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "QUICK_NOTE",
    "difference_text",
    "interval_text",
    "metric_sentence",
    "seeds_text",
    "verdict_text",
]

QUICK_NOTE = (
    "Quick run: too short to compare the rules (a few steps on a subset, few seeds); its "
    "numbers only check that the pipeline runs, and no difference below is a finding."
)


def interval_text(entry: Mapping[str, Any], fmt: str = ".3f") -> str:
    """The mean and its 95% t-interval (the mean alone for one seed)."""
    mean = format(entry["mean"], fmt)
    if entry.get("low") is None:
        return f"{mean} (1 seed, no interval)"
    return f"{mean} (95% CI {entry['low']:{fmt}} to {entry['high']:{fmt}})"


def verdict_text(entry: Mapping[str, Any], quick: bool, subject: str = "DDi") -> str:
    """What the paired interval of ``subject`` − other allows: never a winner from a quick run,
    or from an interval that covers 0."""
    if quick:
        return "not compared (quick run)"
    low, high = entry.get("low"), entry.get("high")
    if low is None or high is None or low <= 0 <= high or entry.get("p") is None:
        return "no significant difference"
    return f"{subject} significantly " + ("higher" if low > 0 else "lower")


def difference_text(
    entry: Mapping[str, Any], fmt: str = ".3f", quick: bool = False, subject: str = "DDi"
) -> str:
    """The paired difference ``subject`` − other: mean, 95% interval, paired t-test, verdict."""
    mean = format(entry["mean"], "+" + fmt)
    if entry.get("low") is None:
        stats = "1 seed"
    else:
        p = entry.get("p")
        test = f"paired t-test p = {p:.2g}" if p is not None else "identical on every seed"
        stats = f"95% CI {entry['low']:+{fmt}} to {entry['high']:+{fmt}}, {test}"
    return f"{mean} ({stats}): {verdict_text(entry, quick, subject)}"


def metric_sentence(
    label: str,
    rules: Mapping[str, Mapping[str, Any]],
    paired: Mapping[str, Mapping[str, Any]],
    names: Mapping[str, str],
    metric: str,
    *,
    fmt: str = ".3f",
    quick: bool = False,
) -> str:
    """One metric over seeds: every rule's mean with its interval, then DDi − each other rule.

    rules: {rule: {metric: interval}}; paired: {other rule: {metric: paired difference}};
    names: {rule: label} in the order to state them."""
    means = "; ".join(f"{names[r]} {interval_text(rules[r][metric], fmt)}" for r in names)
    diffs = "; ".join(
        f"DDi − {names[r]} {difference_text(paired[r][metric], fmt, quick)}"
        for r in names
        if r in paired
    )
    return f"{label}: {means}. {diffs}."


def seeds_text(seeds: Sequence[int]) -> str:
    """ "3 seeds (0, 1, 2)"."""
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"
