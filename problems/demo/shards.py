"""Put together one demo summary from runs on disjoint parts or seeds (one process each), e.g. on
a busy machine::

    python -c "from minimax_problems.demo import run_demo; run_demo('A', parts=('counterexample',
               'worstclass'))"
    python -c "from minimax_problems.demo import run_demo; run_demo('D0', parts=('digits',), seed=0,
               seeds=1)"                                  # and D1, D2 with seed=1, 2
    python -m minimax_problems.demo.shards OUT A/summary.json D0/summary.json D1/summary.json ...

Every seed of every part runs independently of the others (its own split, initialization and
starts), so the result equals one ``minimax demo`` run over the same seeds, wall-clock fields
aside; OUT gets summary.json, the figures and report.html. ``timings`` holds each part's
seconds summed over the processes (the time one process would have taken, about).

Public API::

    merge_summaries(summaries) -> dict
    write_merged(summaries, out) -> dict   (also the figures and report.html)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from .common import strip_times
from .conflict import plot_conflict
from .counterexample import plot_counterexample
from .digits import DIGITS_PARTS, merge_digits
from .digits_figures import plot_digits
from .run import PARTS, write_report

__all__ = ["main", "merge_summaries", "write_merged"]


def merge_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary from shards: each part other than ``digits`` from exactly one shard; the
    digits parts merged over their seeds (`merge_digits`). Every shard must share the run's
    settings (quick, eps, threads, sizes)."""
    if not summaries:
        raise ValueError("summaries is empty: pass at least one shard")
    first = summaries[0]["config"]
    for other in summaries[1:]:
        a, b = strip_times(other["config"]), strip_times(first)
        own = ("seed", "seeds", "parts")
        if {k: v for k, v in a.items() if k not in own} != {
            k: v for k, v in b.items() if k not in own
        }:
            raise ValueError("shards differ in settings (quick, eps, threads or sizes)")
    out: dict[str, Any] = {"config": json.loads(json.dumps(first)), "timings": {}}
    for part in PARTS:
        shards = [s for s in summaries if s.get(part)]
        if not shards:
            continue
        if part in DIGITS_PARTS:
            out[part] = merge_digits([s[part] for s in shards])
        elif len(shards) > 1:
            raise ValueError(f"part {part!r} is in {len(shards)} shards; run it in one")
        else:
            out[part] = shards[0][part]
        out["timings"][part] = round(sum(s["timings"][part] for s in shards), 2)
    seeds = sorted({seed for s in summaries for seed in s["config"]["seeds"]})
    out["config"]["seeds"], out["config"]["seed"] = seeds, seeds[0]
    out["config"]["shards"] = len(summaries)
    out["config"]["parts"] = [p for p in PARTS if p in out]
    out["timings"]["total"] = round(sum(out["timings"].values()), 2)
    return out


def write_merged(summaries: Sequence[Mapping[str, Any]], out: str | Path) -> dict[str, Any]:
    """`merge_summaries`, written to ``out`` with the figures and report.html."""
    summary = merge_summaries(summaries)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    if "counterexample" in summary:
        plot_counterexample(summary["counterexample"], out / "counterexample.png")
        figures.append(("The counterexample", "counterexample.png", "counterexample"))
    if "elu" in summary:
        plot_conflict(summary["elu"]["runs"], out / "elu_toy.png")
        figures.append(("The paper's ELU network toy", "elu_toy.png", "elu"))
    if "worstclass" in summary:
        figures.append(("Worst-class digits", "", "worstclass"))
    for part in DIGITS_PARTS:
        if part in summary:
            figures += plot_digits(summary[part], out)
    text = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"
    atomic_write_text(out / "summary.json", text)
    write_report(summary, out, figures)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``OUT SHARD...``: merge the shards' summary.json files into OUT."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(
            "usage: python -m minimax_problems.demo.shards OUT SHARD/summary.json ...",
            file=sys.stderr,
        )
        return 2
    shards = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args[1:]]
    summary = write_merged(shards, args[0])
    print(
        f"{args[0]}: seeds {summary['config']['seeds']}, parts "
        f"{', '.join(p for p in PARTS if p in summary)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
