"""Tables of benchmarks/attacks.py's results: the console row, the summaries, the Markdown
block docs/custom-loop.md shows (written by ``python benchmarks/attacks.py --publish JSON PAGE``,
checked by tests/test_attacks_benchmark.py).

Public: `BUDGETS`, `t_interval`, `summarize`, `compare`, `print_row`, `markdown`, `publish`,
`MARKERS`.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

MARKERS = ("<!-- bench:attacks -->", "<!-- /bench:attacks -->")


#: every budget, minimax's next to torchattacks' (AutoAttack standard: its own defaults)
BUDGETS: dict[str, dict[str, str]] = {
    "standard": {
        "minimax": "APGD-CE 100 steps; APGD-T 100 steps × 9 targets; FAB-T 100 steps × 9 "
        "targets; Square 5000 queries, p_init 0.8; 1 restart each (the published budgets)",
        "torchattacks": "APGD-CE 10 steps; APGD-T 10 steps × 9 targets; FAB-T 10 steps × 9 "
        "targets; Square 5000 queries, p_init 0.8; 1 restart each",
    },
    "standard, early stop": {
        "minimax": "as standard, with early_stop=True (PGD: cycles; APGD, APGD-T, FAB-T: "
        "misclassified or 25 iterations without an increase; Square: 500 queries without one)",
        "torchattacks": "as standard",
    },
    "standard, torchattacks' budgets": {
        "minimax": "APGD-CE 10 steps; APGD-T 10 steps × 9 targets; FAB-T 10 steps × 9 "
        "targets; Square 5000 queries, p_init 0.8; 1 restart each",
        "torchattacks": "as standard",
    },
    "pgd": {"minimax": "20 steps of 2.5·ε/20, random start", "torchattacks": "the same"},
    "square": {"minimax": "1000 queries, p_init 0.8", "torchattacks": "the same"},
    "apgd-ce": {"minimax": "--steps steps", "torchattacks": "the same"},
    "apgd-t": {"minimax": "--steps steps × 9 targets", "torchattacks": "the same"},
    "fab-t": {"minimax": "--steps steps × 9 targets", "torchattacks": "the same"},
}


def t_interval(values: list[float]) -> float:
    """Half-width of the 95% t-interval of the mean (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± interval of the accuracies; mean times, passes and throughput over the seeds."""
    acc = [r["robust_acc"] for r in runs]
    out: dict[str, Any] = {
        "robust_acc": statistics.mean(acc),
        "ci95": t_interval(acc),
        "per_seed": acc,
    }
    for key in (
        "seconds",
        "cpu_seconds",
        "forward",
        "forward_with_grad",
        "rows",
        "images_per_second",
        "images_per_cpu_second",
    ):
        out[key] = statistics.mean(r[key] for r in runs)
    if "per_attack" in runs[0]:
        out["per_attack"] = {
            a: {
                "cpu_seconds": statistics.mean(r["per_attack"][a]["cpu_seconds"] for r in runs),
                "passes": runs[0]["per_attack"][a]["passes"],
                "examples": runs[0]["per_attack"][a]["examples"],
            }
            for a in runs[0]["per_attack"]
        }
    return out


def stated_budgets(variant: str, case: str, steps: int) -> dict[str, str]:
    """Both libraries' budgets of a row (`BUDGETS`), with the step count it ran."""
    budgets = BUDGETS.get(variant, BUDGETS.get(case, {}))
    return {lib: text.replace("--steps", str(steps)) for lib, text in budgets.items()}


def compare(
    case: str,
    variant: str,
    norm: str,
    eps: float,
    model: str,
    mine: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    steps: int,
) -> dict[str, Any]:
    """A table row: both libraries' summaries, the per-seed CPU ratio and accuracy difference."""
    ratios = [m["cpu_seconds"] / t["cpu_seconds"] for m, t in zip(mine, theirs)]
    diffs = [m["robust_acc"] - t["robust_acc"] for m, t in zip(mine, theirs)]
    return {
        "model": model,
        "case": case,
        "variant": variant,
        "norm": norm,
        "eps": eps,
        "budgets": stated_budgets(variant, case, steps),
        "minimax": summarize(mine),
        "torchattacks": summarize(theirs),
        "cpu_ratio": statistics.mean(ratios),
        "cpu_ratio_ci95": t_interval(ratios),
        "wall_ratio": statistics.mean(m["seconds"] / t["seconds"] for m, t in zip(mine, theirs)),
        "acc_difference": statistics.mean(diffs),
        "acc_difference_ci95": t_interval(diffs),
    }


def print_row(row: dict) -> None:
    if not hasattr(print_row, "header"):
        print(
            f"{'model':5} {'attack':32} {'norm':5} {'minimax acc %':>15} "
            f"{'torchattacks acc %':>19} {'minimax cpu':>12} {'ta cpu':>7} {'cpu ratio':>14} "
            f"{'fwd mm/ta':>12} {'img/s mm/ta':>13}"
        )
        print_row.header = True  # type: ignore[attr-defined]
    m, t = row["minimax"], row["torchattacks"]
    print(
        f"{row['model']:5} {row['variant']:32} {row['norm']:5} "
        f"{100 * m['robust_acc']:8.1f} ± {100 * m['ci95']:4.1f} "
        f"{100 * t['robust_acc']:11.1f} ± {100 * t['ci95']:4.1f} "
        f"{m['cpu_seconds']:12.2f} {t['cpu_seconds']:7.2f} "
        f"{row['cpu_ratio']:7.2f} ± {row['cpu_ratio_ci95']:4.2f} "
        f"{m['forward']:6.0f}/{t['forward']:<5.0f} "
        f"{m['images_per_cpu_second']:6.0f}/{t['images_per_cpu_second']:<6.0f}"
    )
    for fn in m.get("profile", [])[:6]:
        print(f"    minimax  {fn['own_s']:7.3f} s {fn['calls']:7d}  {fn['function']}")
    for fn in t.get("profile", [])[:6]:
        print(f"    torchatt {fn['own_s']:7.3f} s {fn['calls']:7d}  {fn['function']}")


def _pct(s: dict[str, Any]) -> str:
    return f"{100 * s['robust_acc']:.1f} ± {100 * s['ci95']:.1f}"


def _verdict(row: dict[str, Any]) -> str:
    """The accuracy difference in words that follow its interval."""
    d, h = row["acc_difference"], row["acc_difference_ci95"]
    if d - h > 0:
        return f"minimax weaker (+{100 * d:.1f} ± {100 * h:.1f} points)"
    if d + h < 0:
        return f"minimax stronger ({100 * d:.1f} ± {100 * h:.1f} points)"
    if h == 0 and d == 0:
        return "identical on every seed"
    return f"no significant difference ({100 * d:+.1f} ± {100 * h:.1f} points)"


def _speed(row: dict[str, Any]) -> str:
    """The CPU-time ratio in words that follow its interval."""
    r, h = row["cpu_ratio"], row["cpu_ratio_ci95"]
    if r + h < 1:
        return "minimax faster"
    if r - h > 1:
        return "minimax slower"
    return "no significant difference"


def markdown(result: dict[str, Any]) -> str:
    """The comparison table and the budgets, from a results JSON."""
    s = result["settings"]
    repeats = (
        f"; PGD alone: each seed's time is the mean of {s['pgd_repeats']} runs back to back, "
        "after an untimed one"
        if s.get("pgd_repeats", 1) > 1
        else ""
    )
    l2 = f", L2 ε = {s['l2']}" if any(r["norm"] == "l2" for r in result["rows"]) else ""
    out = [
        f"Command: `{result['command']}` (torch {result['torch']}, torchattacks "
        f"{result['torchattacks']}, {result['cpu_threads']} thread, {s['examples']} test "
        f"digits, {s['seeds']} seeds, L∞ ε = {s['linf']}{l2}). Robust accuracy mean ± 95% "
        f"interval over the seeds; CPU seconds per run (mean{repeats}; a single attack's time "
        "includes the forward that measures its robust accuracy, for both libraries); the CPU "
        "ratio is the mean of "
        "per-seed ratios minimax / torchattacks ± its interval; forward passes are model calls "
        "counted by a hook (those with a gradient in brackets); examples per CPU second.",
        "",
        "| model | attack | minimax robust acc % | torchattacks robust acc % | accuracy | "
        "minimax CPU s | torchattacks CPU s | CPU ratio | CPU time | forward passes minimax / "
        "torchattacks | examples/s minimax / torchattacks |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        m, t = r["minimax"], r["torchattacks"]
        out.append(
            f"| {r['model']} | {_label(r)} | {_pct(m)} | {_pct(t)} | {_verdict(r)} | "
            f"{m['cpu_seconds']:.2f} | {t['cpu_seconds']:.2f} | "
            f"{r['cpu_ratio']:.2f} ± {r['cpu_ratio_ci95']:.2f} | {_speed(r)} | "
            f"{m['forward']:.0f} ({m['forward_with_grad']:.0f}) / "
            f"{t['forward']:.0f} ({t['forward_with_grad']:.0f}) | "
            f"{m['images_per_cpu_second']:.0f} / {t['images_per_cpu_second']:.0f} |"
        )
    out += _per_attack_lines(result) + _budget_lines(result)
    return "\n".join(out)


def _label(row: dict[str, Any]) -> str:
    """The attack's name in the table, with its norm where it is not L∞."""
    return row["variant"] if row["norm"] == "linf" else f"{row['variant']} (L2)"


def _per_attack_lines(result: dict[str, Any]) -> list[str]:
    """The per-attack costs of `minimax.evaluate` on the first model."""
    out = [
        "",
        "Per attack of `minimax.evaluate` (first model, mean CPU seconds; passes of "
        "the first seed, counted by the engine, each over the examples still attacked):",
        "",
        "| variant | attack | examples | CPU s | forward | backward |",
        "|---|---|---|---|---|---|",
    ]
    first = result["rows"][0]["model"] if result["rows"] else None
    for r in result["rows"]:
        if r["model"] != first or "per_attack" not in r["minimax"]:
            continue
        for a, v in r["minimax"]["per_attack"].items():
            out.append(
                f"| {r['variant']} | {a} | {v['examples']} | {v['cpu_seconds']:.2f} | "
                f"{v['passes']['forward']} | {v['passes']['backward']} |"
            )
    return out


def _budget_lines(result: dict[str, Any]) -> list[str]:
    """Each variant's budgets, minimax's beside torchattacks'."""
    out = ["", "Budgets:", ""]
    seen = set()
    for r in result["rows"]:
        if r["variant"] in seen:
            continue
        seen.add(r["variant"])
        b = r["budgets"]
        out.append(
            f"- **{r['variant']}**: minimax {b.get('minimax', '?')}; "
            f"torchattacks {b.get('torchattacks', '?')}."
        )
    return out


def publish(results: Path, page: Path) -> None:
    """Write the tables of ``results`` (a JSON benchmarks/attacks.py wrote) into ``page``."""
    from minimax_problems.pages import replace_block

    replace_block(page, MARKERS, markdown(json.loads(results.read_text(encoding="utf-8"))))
