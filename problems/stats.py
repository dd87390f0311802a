"""Statistics for comparisons over seeds: the mean with a 95% t-interval, and the paired
difference between DDi and another rule with a paired t-test (scipy.stats).

The verdict is "no significant difference" unless the 95% interval of the paired difference
excludes 0 and the paired t-test can be run: with one seed there is no interval, and with the
same difference on every seed no test. The interval and the two-sided paired t-test at 5%
agree: the interval excludes 0 exactly when p < 0.05.

Public API::

    mean_interval(values) -> {"mean", "low", "high", "n"}        (low/high None for n < 2)
    paired_difference(ddi, other, higher_is_better)
        -> {"diffs", "mean", "low", "high", "n", "t", "p", "verdict"}
    VERDICTS
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["VERDICTS", "mean_interval", "paired_difference"]

VERDICTS: tuple[str, ...] = ("no significant difference", "DDi better", "DDi worse")


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% t-interval of ``values`` (None bounds for one value)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("values is empty: pass at least one value")
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def paired_difference(
    ddi: Sequence[float], other: Sequence[float], higher_is_better: bool
) -> dict[str, Any]:
    """DDi − other per seed: mean, 95% interval, paired t-test, and the verdict it allows."""
    from scipy import stats

    if len(ddi) != len(other):
        raise ValueError(
            f"ddi and other need one value per seed each, got {len(ddi)} and {len(other)}"
        )
    diffs = [a - b for a, b in zip(ddi, other, strict=True)]
    out = {"diffs": diffs, **mean_interval(diffs), "t": None, "p": None}
    spread = max(diffs) - min(diffs)
    if len(diffs) >= 2 and spread > 1e-9 * max(1.0, *(abs(d) for d in diffs)):
        test = stats.ttest_rel(ddi, other)
        out["t"], out["p"] = float(test.statistic), float(test.pvalue)
    low, high = out["low"], out["high"]
    if low is None or (low <= 0 <= high) or out["p"] is None:
        # no interval (one seed), an interval that covers 0, or no test: the same difference
        # on every seed leaves no spread to test against
        out["verdict"] = VERDICTS[0]
    else:
        better = (low > 0) == higher_is_better
        out["verdict"] = VERDICTS[1] if better else VERDICTS[2]
    return out
