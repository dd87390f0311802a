"""The demo's sentences, generated from the numbers of summary.json alone."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from problems.demo.common import (
    RULE_LABELS,
    SETTING_LABELS,
    UP_TOL,
    pct,
)
from problems.demo.digits import RULES

__all__ = ["early_epoch", "findings"]


def _cmp(a: float, b: float, *, higher_is_better: bool, tol: float) -> str:
    diff = a - b if higher_is_better else b - a
    if abs(a - b) <= tol:
        return "a tie"
    return "DDi wins" if diff > 0 else "DDi does not win"


def _fmt_vec(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x if abs(x) > 1e-9 else 0.0:.4g}" for x in v) + ")"


def findings(summary: Mapping[str, Any]) -> dict[str, list[str]]:
    """The report's sentences, generated from the numbers of ``summary`` (nothing hand-written
    about the outcome)."""
    out: dict[str, list[str]] = {}
    if summary.get("counterexample"):
        out["counterexample"] = _counterexample_sentences(summary["counterexample"])
    if summary.get("elu"):
        out["elu"] = _elu_sentences(summary["elu"])
    dg = summary.get("digits")
    if dg:
        out["digits"] = [
            f"{dg['train_examples']} training and {dg['test_examples']} test images, L∞ ε = "
            f"{dg['eps']:g}, m = {dg['restarts']} restarts of {dg['pgd_steps']}-step PGD for "
            f"every rule, {dg['epochs']} epochs, test robust accuracy by {dg['eval']}.",
        ]
        for setting, block in dg["settings"].items():
            out[f"digits_{setting}"] = _digits_sentences(
                SETTING_LABELS[setting], block, dg["restarts"]
            )
    return out


def _counterexample_sentences(ce: Mapping[str, Any]) -> list[str]:
    dan, ddi, one = ce["danskin"], ce["ddi"], ce["one_step"]
    n = ce["iterations"]
    phi0 = dan["phi"][0]

    def moved(v: float) -> str:
        return "up" if v > phi0 else ("down" if v < phi0 else "unchanged")

    def reached(res: Mapping[str, Any]) -> str:
        k = res["steps_to_within_0.01"]
        return f"{k} steps" if k is not None else f"none of the {n} steps"

    table = one["table"]
    etas = ", ".join(f"{r['eta']:g}" for r in table)
    dan_up = all(r["phi_danskin"] > phi0 for r in table)
    ddi_down = all(r["phi_ddi"] < phi0 for r in table)
    return [
        f"At x = {_fmt_vec(ce['start'])} the library's Danskin direction is "
        f"{_fmt_vec(one['danskin_direction'])} and DDi's is {_fmt_vec(one['ddi_direction'])} "
        f"(total weight {one['ddi_weight_y0']:.4g} on the candidates at y = 0 and "
        f"{one['ddi_weight_y1']:.4g} on those at y = 1).",
        f"One normalized step of {ce['step']:g} moved φ from {phi0:.4f} to "
        f"{dan['phi_after_first_step']:.4f} with Danskin ({moved(dan['phi_after_first_step'])})"
        f" and to {ddi['phi_after_first_step']:.4f} with DDi "
        f"({moved(ddi['phi_after_first_step'])}).",
        f"After {n} steps φ was {dan['final_phi']:.4f} with Danskin vs {ddi['final_phi']:.4f} "
        f"with DDi (the minimum is 1); φ went up (by more than {UP_TOL:g}) after "
        f"{dan['went_up_steps']} of Danskin's "
        f"{n} steps and {ddi['went_up_steps']} of DDi's. φ first came within 0.01 of the "
        f"minimum after {reached(dan)} with Danskin and {reached(ddi)} with DDi.",
        f"One step of size η along the library's directions, for η in "
        f"{etas}: φ "
        f"{'rose above' if dan_up else 'did not always rise above'} {phi0:g} along Danskin's "
        f"and {'fell below' if ddi_down else 'did not always fall below'} it along DDi's; the "
        f"values match 2 + 8η² and (1 − 2η)² + 1 to within "
        f"{one['max_gap_to_closed_form']:.1e}.",
    ]


def _elu_sentences(elu: Mapping[str, Any]) -> list[str]:
    dan, ddi, scan = elu["danskin"], elu["ddi"], elu["scan"]
    n = elu["iterations"]
    g = ddi["gram"]
    verdict = _cmp(
        ddi["final_robust_loss"], dan["final_robust_loss"], higher_is_better=False, tol=5e-5
    )
    lines = scan["lines"]
    cand = {k: v for k, v in lines.items() if k != "DDi"}
    first = scan["first_step_change"]
    cand_first = [first[k] for k in cand]
    return [
        f"Exact robust loss (grid of {elu['resolution']}² points per example) after {n} "
        f"iterations, from {dan['robust_loss'][0]:.4f}: {dan['final_robust_loss']:.4f} with "
        f"Danskin vs {ddi['final_robust_loss']:.4f} with DDi ({verdict}); lowest on the way "
        f"{dan['best_robust_loss']:.4f} vs {ddi['best_robust_loss']:.4f} (a constant "
        f"prediction of ½ has loss log 2 = {math.log(2):.4f}).",
        f"The exact robust loss went up (by more than {UP_TOL:g}) after "
        f"{dan['went_up_steps']} of Danskin's {n} steps "
        f"and {ddi['went_up_steps']} of DDi's.",
        f"Of the {g['pairs']} pairs of candidate gradients (batch level, m = "
        f"{elu['restarts']}) DDi formed over training, {g['negative']} had a negative inner "
        f"product ({g['steps_with_negative']} of {n} steps had at least one); within single "
        f"examples, {g['example_negative']} of {g['example_pairs']} pairs did.",
        f"Line scans at Danskin's iterate {scan['at_iteration']} (robust loss "
        f"{scan['robust_loss_at_start']:.4f}): a first step of length {scan['first_step']:g} "
        f"changed the exact robust loss by {first['DDi']:+.4f} along DDi's direction and by "
        f"{min(cand_first):+.4f} to {max(cand_first):+.4f} along the {len(cand)} candidates' "
        f"negative gradients; the lowest value along the DDi line was "
        f"{scan['min_along']['DDi']:.4f} vs {min(scan['min_along'][k] for k in cand):.4f} "
        f"along the best candidate line.",
    ]


def early_epoch(epochs: int) -> int:
    return max(1, math.ceil(epochs / 4))


def _digits_sentences(label: str, block: Mapping[str, Any], m: int) -> list[str]:
    rules = block["rules"]
    dan, ml, ddi = rules["danskin"], rules["maxloss"], rules["ddi"]
    n_epochs = len(ddi["epochs"])
    early = early_epoch(n_epochs)

    def at(res: Mapping[str, Any], epoch: int) -> float:
        return res["epochs"][epoch - 1]["robust_acc"]

    best_rule = max(RULES, key=lambda r: (rules[r]["final_robust_acc"], r == "ddi"))
    verdict = _cmp(ddi["final_robust_acc"], dan["final_robust_acc"], higher_is_better=True, tol=0.0)
    early_verdict = _cmp(at(ddi, early), at(dan, early), higher_is_better=True, tol=0.0)
    # robust accuracy at equal wall-clock: the last evaluation within Danskin's total time
    budget = dan["final_wall"]
    within = [r for r in ddi["epochs"] if r["wall"] <= budget * 1.0001]
    equal_time = within[-1]["robust_acc"] if within else None
    tails = [[r["robust_acc"] for r in res["epochs"][n_epochs // 2 :]] for res in rules.values()]
    half = [v for tail in tails for v in tail]
    swings = [abs(b - a) for tail in tails for a, b in itertools.pairwise(tail)]
    noise = max(swings) if swings else 0.0
    gap = abs(ddi["final_robust_acc"] - dan["final_robust_acc"])
    sentences = [
        f"{label}: DDi's final robust accuracy was {ddi['final_robust_acc']:.3f} vs Danskin's "
        f"{dan['final_robust_acc']:.3f} and MaxLoss's {ml['final_robust_acc']:.3f} "
        f"({verdict} against Danskin; highest: {RULE_LABELS[best_rule]}). Final clean accuracy: "
        f"{ddi['final_clean_acc']:.3f} (DDi), {dan['final_clean_acc']:.3f} (Danskin), "
        f"{ml['final_clean_acc']:.3f} (MaxLoss).",
        f"Over the second half of training the robust accuracy moved by up to {noise:.3f} from "
        f"one epoch to the next (range {min(half):.3f}–{max(half):.3f} over the three rules); "
        f"the final gap between DDi and Danskin, {gap:.3f}, is "
        f"{'within' if gap <= noise else 'larger than'} that swing (one seed).",
        f"Early on (epoch {early} of {n_epochs}) the robust accuracy was {at(ddi, early):.3f} "
        f"for DDi vs {at(dan, early):.3f} for Danskin and {at(ml, early):.3f} for MaxLoss "
        f"({early_verdict} against Danskin).",
        f"The batch robust loss, re-measured by rerunning the attack after the step, went up "
        f"after {pct(dan['went_up_fraction'])} of Danskin's steps, "
        f"{pct(ml['went_up_fraction'])} of MaxLoss's and {pct(ddi['went_up_fraction'])} of "
        f"DDi's.",
        f"The entropy of DDi's weights over the m = {m} "
        f"candidates averaged {ddi['mean_weights_entropy']:.3f} (0: all weight on one "
        f"candidate, as Danskin; log m = {math.log(m):.3f}: equal weights).",
        f"Compute: DDi ran {ddi['passes']} forward and backward passes over a batch, "
        f"Danskin {dan['passes']} and MaxLoss {ml['passes']} (DDi "
        f"{ddi['passes'] / max(dan['passes'], 1):.2f}× Danskin's). "
        f"Training wall-clock: {ddi['final_wall']:.1f} s for DDi, {dan['final_wall']:.1f} s for "
        f"Danskin, {ml['final_wall']:.1f} s for MaxLoss (DDi took "
        f"{ddi['final_wall'] / max(dan['final_wall'], 1e-9):.2f}× Danskin's time)"
        + (
            f"; within Danskin's total time DDi reached {equal_time:.3f} robust accuracy."
            if equal_time is not None
            else "; DDi's first epoch already took longer than all of Danskin's training."
        ),
    ]
    return sentences
