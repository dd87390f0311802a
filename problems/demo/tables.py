"""The demo's summary tables (for stdout, report.html and the README), from summary.json alone.

A cell "0.712 ± 0.022" is the mean over seeds and the half-width of its 95% t-interval (the
mean alone with one seed). The last table states every paired difference (DDi or a DDi variant −
another rule) with its interval, paired t-test and verdict (`problems.demo.verdicts`).

Public API::

    summary_tables(summary) -> [(heading, header, rows)]
    format_table(header, rows) -> str       a plain-text table (stdout)
    markdown_table(header, rows) -> str     a Markdown table (README, docs)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .common import RULE_LABELS, SETTING_LABELS
from .digits import DIGITS_PARTS
from .findings import WORSTCLASS_LABELS, WORSTCLASS_STATED
from .verdicts import verdict_text

__all__ = ["format_table", "markdown_table", "summary_tables"]

Table = tuple[str, list[str], list[list[str]]]

METRIC_LABELS = {
    "final_robust_loss": "exact robust loss at the end",
    "best_robust_loss": "lowest exact robust loss",
    "worst_class_test_acc": "worst-class test acc",
    "worst_class_test_loss": "worst-class test loss",
    "test_acc": "average test acc",
    "worst_class_train_loss": "worst-class train loss",
    "switch_fraction": "worst-class switches",
    "went_up_fraction": "loss went up (fraction of steps)",
    "final_norm": "‖d‖ at the end",
    "final_robust_acc": "robust acc",
    "final_clean_acc": "clean acc",
}


def cell(entry: Mapping[str, Any], fmt: str = ".3f") -> str:
    """Mean ± half-width of the 95% interval (the mean alone for one seed)."""
    mean = format(entry["mean"], fmt)
    if entry.get("low") is None:
        return mean
    return f"{mean} ± {(entry['high'] - entry['low']) / 2:{fmt}}"


#: the wall-clock column's caveat, in its table's heading (stdout, report.html, the README)
WALL_CAVEAT = (
    "; wall (s): mean training seconds per run, measured on a shared machine: they depend on its"
    " load, so compare them within one run, not across runs or machines"
)


def summary_tables(summary: Mapping[str, Any]) -> list[Table]:
    """The summary tables (heading, header, rows of strings), for stdout and the report."""
    quick = bool(summary.get("config", {}).get("quick", False))
    tables: list[Table] = []
    paired_rows: list[list[str]] = []
    if summary.get("counterexample"):
        tables.append(_counterexample_table(summary["counterexample"]))
    if summary.get("elu"):
        tables.append(_elu_table(summary["elu"]))
        for metric, entry in summary["elu"]["paired"]["danskin"].items():
            paired_rows.append(_paired_row("ELU toy", metric, "Danskin", entry, ".4f", quick))
    wc = summary.get("worstclass")
    if wc:
        tables.append(_worstclass_table(wc))
        for metric, _, fmt in WORSTCLASS_STATED:
            for other, by_metric in wc["paired"].items():
                paired_rows.append(
                    _paired_row(
                        "worst-class",
                        metric,
                        WORSTCLASS_LABELS[other],
                        by_metric[metric],
                        fmt,
                        quick,
                    )
                )
    for part in DIGITS_PARTS:
        dg = summary.get(part)
        if not dg:
            continue
        tables.append(_digits_table(dg))
        for setting, block in dg["settings"].items():
            for rule, others in block["paired"].items():
                for other, by_metric in others.items():
                    for metric, entry in by_metric.items():
                        paired_rows.append(
                            _paired_row(
                                f"digits, {SETTING_LABELS[setting]}",
                                metric,
                                RULE_LABELS[other],
                                entry,
                                ".3f",
                                quick,
                                RULE_LABELS[rule],
                            )
                        )
    if paired_rows:
        header = ["part", "metric", "difference", "mean", "95% CI", "p", "verdict"]
        tables.append(("Rule − other rule, paired over seeds", header, paired_rows))
    return tables


def _paired_row(
    part: str,
    metric: str,
    other: str,
    entry: Mapping[str, Any],
    fmt: str,
    quick: bool,
    rule: str = "DDi",
) -> list[str]:
    ci = "n/a" if entry.get("low") is None else f"{entry['low']:+{fmt}} to {entry['high']:+{fmt}}"
    p = "n/a" if entry.get("p") is None else f"{entry['p']:.2g}"
    label = METRIC_LABELS.get(metric, metric)
    mean = format(entry["mean"], "+" + fmt)
    return [part, label, f"{rule} − {other}", mean, ci, p, verdict_text(entry, quick, rule)]


def _counterexample_table(ce: Mapping[str, Any]) -> Table:
    header = ["rule", "φ start", "after 1 step", "final", "steps up", "steps"]
    rows = [
        [
            RULE_LABELS[r],
            f"{ce[r]['phi'][0]:.4f}",
            f"{ce[r]['phi'][1]:.4f}",
            f"{ce[r]['final_phi']:.4f}",
            str(ce[r]["went_up_steps"]),
            str(ce["iterations"]),
        ]
        for r in ("danskin", "ddi")
    ]
    return ("Counterexample (exact φ, one run)", header, rows)


def _elu_table(part: Mapping[str, Any]) -> Table:
    first = part["runs"][0]
    late = first["rules"]["ddi"]["late_from"]
    header = [
        "rule",
        f"exact robust loss @ {first['iterations']}",
        "conflicting pairs",
        f"conflicting pairs from it. {late}",
        "conflicts, signed-PGD candidates",
    ]
    rows = [
        [
            RULE_LABELS[r],
            cell(part["rules"][r]["final_robust_loss"], ".4f"),
            cell(part["rules"][r]["negative_fraction"]),
            cell(part["rules"][r]["late_negative_fraction"]),
            cell(part["rules"][r]["probe_negative_fraction"]),
        ]
        for r in ("danskin", "ddi")
    ]
    return (
        f"The paper's ELU toy, {len(part['seeds'])} seeds (fractions of candidate pairs "
        "with a negative inner product)",
        header,
        rows,
    )


def _worstclass_table(wc: Mapping[str, Any]) -> Table:
    header = [
        "rule",
        "worst-class acc",
        "worst-class loss",
        "test acc",
        "switches",
        "went up",
        "‖d‖ (end)",
        "backward passes",
    ]
    rows = []
    for rule in wc["settings"]["rules"]:
        backward = sum(r["rules"][rule]["backward"] for r in wc["runs"]) / len(wc["runs"])
        rows.append(
            [
                WORSTCLASS_LABELS[rule],
                *(cell(wc["rules"][rule][m], fmt) for m, _, fmt in WORSTCLASS_STATED),
                f"{backward:.0f}",
            ]
        )
    s = wc["settings"]
    return (
        f"Worst-class digits (clean), {len(wc['seeds'])} seeds, {s['steps']} steps",
        header,
        rows,
    )


def _digits_table(dg: Mapping[str, Any]) -> Table:
    header = [
        "setting",
        "rule",
        "clean acc",
        f"robust acc ({dg['eval']})",
        "loss went up",
        "passes (fwd+bwd)",
        "wall (s)",
    ]
    rows = []
    for setting, block in dg["settings"].items():
        for rule, stats in block["rules"].items():
            runs = [run[rule] for run in block["runs"]]
            rows.append(
                [
                    SETTING_LABELS[setting],
                    RULE_LABELS[rule],
                    cell(stats["final_clean_acc"]),
                    cell(stats["final_robust_acc"]),
                    cell(stats["went_up_fraction"]),
                    f"{sum(r['passes'] for r in runs) / len(runs):.0f}",
                    f"{sum(r['final_wall'] for r in runs) / len(runs):.1f}",
                ]
            )
    return (
        f"Adversarial digits, {len(dg['seeds'])} seeds, {dg['epochs']} epochs, ε = {dg['eps']:g}"
        f"{WALL_CAVEAT}",
        header,
        rows,
    )


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table (for stdout)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))
    body = [
        "  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (for the README and docs); "|" in a cell is escaped."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in rows)])
