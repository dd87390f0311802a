"""What the demo found, in a few plain sentences generated from a summary (the README's block),
and which verdicts changed between two runs of the same comparisons (e.g. 1 and 2 torch
threads). Every verdict is the one `problems.demo.verdicts` states from the paired 95% interval.

Public API::

    headline(summary, other=None) -> list[str]   the sentences (``other``: the same run with
                                                 another thread count, for the last sentence)
    verdicts(summary) -> {comparison: verdict}   every paired comparison the tables state
    changed_verdicts(a, b) -> [str]              comparisons whose verdict differs from a to b
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import RULE_LABELS, SETTING_LABELS
from .digits import DIGITS_PARTS
from .tables import summary_tables
from .verdicts import QUICK_NOTE, verdict_text

__all__ = ["changed_verdicts", "headline", "verdicts"]

PAIRED_HEADING = "Rule − other rule, paired over seeds"


def verdicts(summary: Mapping[str, Any]) -> dict[str, str]:
    """{"part, metric, rule − other": verdict} for every row of the paired table."""
    for heading, _, rows in summary_tables(summary):
        if heading == PAIRED_HEADING:
            return {f"{r[0]}, {r[1]}, {r[2]}": r[-1] for r in rows}
    return {}


def changed_verdicts(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """ "comparison: verdict in a → verdict in b" for each comparison both state differently."""
    va, vb = verdicts(a), verdicts(b)
    return [f"{k}: {va[k]} → {vb[k]}" for k in va if k in vb and va[k] != vb[k]]


def _said(entry: Mapping[str, Any], quick: bool) -> str:
    """The verdict without its subject ("significantly lower": the sentence names the rule just
    before), then the mean difference and its interval in brackets."""
    interval = (
        "" if entry.get("low") is None else f", 95% CI {entry['low']:+.3f} to {entry['high']:+.3f}"
    )
    return f"{verdict_text(entry, quick, subject='').strip()} ({entry['mean']:+.3f}{interval})"


def headline(summary: Mapping[str, Any], other: Mapping[str, Any] | None = None) -> list[str]:
    """The demo's findings in plain sentences, from ``summary`` alone (and ``other``)."""
    quick = bool(summary["config"]["quick"])
    said = [QUICK_NOTE] if quick else []
    ce = summary.get("counterexample")
    if ce:
        table = ce["one_step"]["table"]
        phi0 = ce["danskin"]["phi"][0]
        up = all(r["phi_danskin"] > phi0 for r in table)
        down = all(r["phi_ddi"] < phi0 for r in table)
        said.append(
            f"On the paper's counterexample (exact values), one step along the single-gradient "
            f"direction {'raised' if up else 'did not always raise'} the robust loss for every "
            f"step size tried and one step along DDi's "
            f"{'lowered' if down else 'did not always lower'} it; with {ce['iterations']} "
            f"normalized steps the robust loss went up after {ce['danskin']['went_up_steps']} "
            f"of the single-gradient rule's steps and {ce['ddi']['went_up_steps']} of DDi's."
        )
    wc = summary.get("worstclass")
    if wc:
        acc = {r: _said(wc["paired"][r]["worst_class_test_acc"], quick) for r in wc["paired"]}
        said.append(
            f"Worst-class digits ({len(wc['seeds'])} seeds), worst-class test accuracy of DDi "
            f"against the single-gradient rule: {acc['danskin']}; against Group DRO: "
            f"{acc['group_dro']}; against ERM: {acc['erm']}. Fraction of steps at which the "
            "worst training class switched, DDi against the single-gradient rule: "
            f"{_said(wc['paired']['danskin']['switch_fraction'], quick)}."
        )
    for part in DIGITS_PARTS:
        said += _digits(summary.get(part), quick)
    if other is not None:
        changed = changed_verdicts(summary, other)
        threads = other["config"]["threads"]
        said.append(
            f"The same run with {threads} torch thread{'s' if threads != 1 else ''} states "
            + (
                "the same verdict for every comparison."
                if not changed
                else f"a different verdict for {len(changed)} "
                f"comparison{'s' if len(changed) != 1 else ''}: " + "; ".join(changed) + "."
            )
        )
    return said


def _digits(dg: Mapping[str, Any] | None, quick: bool) -> list[str]:
    """Robust accuracy of each DDi variant against PGD-AT, and the certified step's record."""
    said: list[str] = []
    if not dg:
        return said
    for setting, block in dg["settings"].items():
        for metric, what in (("final_robust_acc", "robust"), ("final_clean_acc", "clean")):
            against = [
                f"{RULE_LABELS[r]}: {_said(o['danskin'][metric], quick)}"
                for r, o in block["paired"].items()
                if "danskin" in o
            ]
            said.append(
                f"Adversarial training on the digits ({SETTING_LABELS[setting]}, "
                f"{len(dg['seeds'])} seeds, {dg['epochs']} epochs), final {what} accuracy "
                f"against PGD-AT: {'; '.join(against)}."
            )
        for rule, ls in block.get("line_search", {}).items():
            if not ls["accepted"]:
                said.append(f"{RULE_LABELS[rule]}: no step was accepted.")
                continue
            held = (
                "on every accepted step the batch robust loss fell by at least the certified amount"
                if ls["below_certified"] == 0
                else f"on {ls['below_certified']} accepted steps it fell by less than certified"
            )
            said.append(
                f"{RULE_LABELS[rule]} ({SETTING_LABELS[setting]}): {ls['accepted']} of "
                f"{ls['steps']} steps accepted; {held} (median realised decrease "
                f"{ls['realised_median']:.3g} nats against a median certified "
                f"{ls['certified_median']:.3g}), as re-measured by the attack; a step is kept only "
                "where that loss fell, so by construction it never went up."
            )
    return said
