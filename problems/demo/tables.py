"""The demo's summary tables (for stdout and report.html), from summary.json alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from problems.demo.common import (
    RULE_LABELS,
    SETTING_LABELS,
    pct,
)
from problems.demo.findings import early_epoch

__all__ = ["format_table", "summary_tables"]


def summary_tables(summary: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The summary tables (heading, header, rows of strings), for stdout and the report."""
    tables = []
    ce, elu = summary.get("counterexample"), summary.get("elu")
    if ce or elu:
        header = ["problem", "rule", "start", "after 1 step", "final", "steps up", "steps"]
        rows = []
        # (label, part, its values per iteration, the value after one step, the final value)
        toys = [("counterexample φ", ce, "phi", "final_phi"),
                ("ELU toy robust loss", elu, "robust_loss", "final_robust_loss")]  # fmt: skip
        for label, part, curve, final in toys:
            if not part:
                continue
            for r in ("danskin", "ddi"):
                res = part[r]
                rows.append([
                    label, RULE_LABELS[r], f"{res[curve][0]:.4f}", f"{res[curve][1]:.4f}",
                    f"{res[final]:.4f}", str(res["went_up_steps"]), str(part["iterations"]),
                ])  # fmt: skip
        tables.append(("Toy problems (exact robust loss)", header, rows))
    dg = summary.get("digits")
    if dg:
        early = early_epoch(dg["epochs"])
        header = [
            "setting",
            "rule",
            "clean acc",
            "robust acc",
            "best robust acc",
            f"robust acc @ epoch {early}",
            "loss went up",
            "mean ‖d‖ (last epoch)",
            "passes (fwd+bwd)",
            "wall (s)",
        ]
        rows = []
        for setting, block in dg["settings"].items():
            for r, res in block["rules"].items():
                rows.append(
                    [
                        SETTING_LABELS[setting],
                        RULE_LABELS[r],
                        f"{res['final_clean_acc']:.3f}",
                        f"{res['final_robust_acc']:.3f}",
                        f"{res['best_robust_acc']:.3f}",
                        f"{res['epochs'][early - 1]['robust_acc']:.3f}",
                        pct(res["went_up_fraction"]),
                        f"{res['epochs'][-1]['mean_norm']:.3g}",
                        str(res["passes"]),
                        f"{res['final_wall']:.1f}",
                    ]
                )
        tables.append((f"Digits, {dg['epochs']} epochs, ε = {dg['eps']:g}", header, rows))
    return tables


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table (for stdout)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True))
    body = [
        "  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])
