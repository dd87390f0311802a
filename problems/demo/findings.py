"""The demo's sentences, generated from the numbers of summary.json alone. Every comparison
between rules is stated through `problems.demo.verdicts`: means with 95% intervals over seeds,
paired differences with a paired t-test, and no winner unless the interval excludes 0 (never in
a quick run)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .common import RULE_LABELS, SETTING_LABELS, UP_TOL, pct
from .digits import DIGITS_PARTS
from .verdicts import (
    QUICK_NOTE,
    difference_text,
    interval_text,
    metric_sentence,
    seeds_text,
)

__all__ = ["findings"]

WORSTCLASS_LABELS = {"erm": "ERM", "danskin": "Danskin", "ddi": "DDi", "group_dro": "Group DRO"}
#: worst-class metrics stated in the report: (metric, label, format)
WORSTCLASS_STATED = (
    ("worst_class_test_acc", "Worst-class test accuracy", ".3f"),
    ("worst_class_test_loss", "Worst-class test loss", ".3f"),
    ("test_acc", "Average test accuracy", ".3f"),
    ("switch_fraction", "Fraction of steps at which the worst training class switched", ".3f"),
    (
        "went_up_fraction",
        "Fraction of steps after which the worst-class training loss went up",
        ".3f",
    ),
    ("final_norm", "‖d‖ over the last 10% of steps", ".3g"),
)


def _fmt_vec(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x if abs(x) > 1e-9 else 0.0:.4g}" for x in v) + ")"


def findings(summary: Mapping[str, Any]) -> dict[str, list[str]]:
    """The report's sentences, generated from the numbers of ``summary`` (nothing hand-written
    about the outcome)."""
    quick = bool(summary.get("config", {}).get("quick", False))
    out: dict[str, list[str]] = {}
    if quick:
        out["quick"] = [QUICK_NOTE]
    if summary.get("counterexample"):
        out["counterexample"] = _counterexample_sentences(summary["counterexample"])
    if summary.get("elu"):
        out["elu"] = _elu_sentences(summary["elu"], quick)
    if summary.get("worstclass"):
        out["worstclass"] = _worstclass_sentences(summary["worstclass"], quick)
    for part in DIGITS_PARTS:
        dg = summary.get(part)
        if not dg:
            continue
        out[part] = [_digits_setup(dg)]
        for setting, block in dg["settings"].items():
            label = SETTING_LABELS[setting]
            out[f"digits_{setting}"] = _digits_sentences(label, block, dg["restarts"], quick)
            if block.get("line_search"):
                out[f"certified_{setting}"] = _certified_sentences(dg, block)
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


def _elu_sentences(part: Mapping[str, Any], quick: bool) -> list[str]:
    runs, rules = part["runs"], part["rules"]
    first = runs[0]
    names = {"danskin": "Danskin", "ddi": "DDi"}
    start = first["rules"]["ddi"]["robust_loss"][0]
    finals = [run["rules"][r]["final_robust_loss"] for run in runs for r in names]
    starts = [run["rules"][r]["robust_loss"][0] for run in runs for r in names]
    rose = sum(f > s + UP_TOL for f, s in zip(finals, starts, strict=True))

    def frac(rule: str, metric: str) -> str:
        return interval_text(rules[rule][metric], ".3f")

    late = first["rules"]["ddi"]["late_from"]
    fewer = (
        rules["ddi"]["probe_negative_fraction"]["mean"] < rules["ddi"]["negative_fraction"]["mean"]
    )
    return [
        f"The paper's setting, {seeds_text(part['seeds'])}: m = {first['restarts']} candidates "
        f"at random corners of the L∞ box (ε = {first['eps']:g}), {first['inner_steps']} plain "
        f"ascent steps of 0.1 on the batch-mean loss, per-tensor normalized steps of "
        f"{first['lr']:g}, {first['iterations']} iterations, n = {first['n']} points.",
        f"Fraction of candidate pairs whose gradients had a negative inner product: "
        f"{frac('ddi', 'negative_fraction')} along DDi's path and "
        f"{frac('danskin', 'negative_fraction')} along Danskin's (from iteration {late} on: "
        f"{frac('ddi', 'late_negative_fraction')} and "
        f"{frac('danskin', 'late_negative_fraction')}, of {first['restarts']} · "
        f"{first['restarts'] - 1} / 2 = {first['restarts'] * (first['restarts'] - 1) // 2} "
        f"pairs per step).",
        f"At the same iterates (every {first['probe_every']}th), {first['restarts']} restarts "
        f"of signed PGD with step ε/4, a real inner maximizer, gave conflicting pairs in "
        f"{frac('ddi', 'probe_negative_fraction')} of pairs along DDi's path and "
        f"{frac('danskin', 'probe_negative_fraction')} along Danskin's"
        + (": the conflicts come from candidates that are not maximizers." if fewer else "."),
        metric_sentence(
            f"Exact robust loss (grid of {first['resolution']}² points per example) "
            f"after {first['iterations']} iterations, from {start:.4f} on the first "
            f"seed",
            rules,
            part["paired"],
            names,
            "final_robust_loss",
            fmt=".4f",
            quick=quick,
        ),
        f"The exact robust loss ended above where it started in {rose} of the {len(finals)} "
        f"runs (both rules, every seed)"
        + (
            ": the paper's candidates barely leave random corners, so both rules descend on the "
            "loss at those corners, not on the robust loss."
            if 2 * rose > len(finals)
            else "."
        ),
    ]


def _worstclass_sentences(part: Mapping[str, Any], quick: bool) -> list[str]:
    s = part["settings"]
    names = {r: WORSTCLASS_LABELS[r] for r in s["rules"]}
    run = part["runs"][0]
    backward = {
        r: sum(x["rules"][r]["backward"] for x in part["runs"]) / len(part["runs"])
        for r in s["rules"]
    }
    certified = bool(s.get("certified", False))  # summaries before the certified step lack it
    ddi = (
        f"DDi takes the certified step (an Armijo search from the learning rate on the exact "
        f"worst-class loss) with τ shrinking from {s['tolerance']:g} nats as ‖d‖ does"
        if certified
        else f"DDi's tolerance τ = {s['tolerance']:g} nats"
    )
    sentences = [
        f"min over θ of the largest per-class mean cross-entropy over the 10 digit classes, "
        f"clean inputs, {run['train_examples']} training and {run['test_examples']} test "
        f"images, a 64-{s['hidden']}-10 tanh MLP, {s['steps']} full-batch SGD steps of "
        f"{s['lr']:g} per rule, {seeds_text(part['seeds'])}; the inner max over the classes is "
        f"exact; {ddi}; Group DRO's step size η = {s['dro_step_size']:g}.",
    ]
    for metric, label, fmt in WORSTCLASS_STATED:
        sentences.append(
            metric_sentence(
                label, part["rules"], part["paired"], names, metric, fmt=fmt, quick=quick
            )
        )
    sentences.append(
        "Backward passes over the batch per run (mean over seeds): "
        + ", ".join(f"{names[r]} {backward[r]:.0f}" for r in names)
        + (
            " (DDi: one per step, the class Gram matrix in one pass; its line-search trials are "
            "forwards)."
            if certified
            else " (DDi: one per τ-active class)."
        )
    )
    return sentences


def _digits_setup(dg: Mapping[str, Any]) -> str:
    return (
        f"{dg['train_examples']} training and {dg['test_examples']} test images per seed "
        f"(each seed its own split, initialization and attack starts), "
        f"{seeds_text(dg['seeds'])}, L∞ ε = {dg['eps']:g}, m = {dg['restarts']} restarts "
        f"of {dg['pgd_steps']}-step PGD for every rule, {dg['epochs']} epochs, test robust "
        f"accuracy by {dg['eval']}; SGD with learning rate {dg['lr']:g}, momentum 0.9 and "
        f"weight decay 5e-4, except DDi with the certified step: plain SGD steps of at most "
        f"{dg['certified_lr']:g}, each shortened by an Armijo search (c = {dg['armijo']['c']:g}) "
        "on the batch robust loss re-measured by the attack. In the figures each line is the "
        "mean over the seeds and the shading their range."
    )


def _digits_sentences(label: str, block: Mapping[str, Any], m: int, quick: bool) -> list[str]:
    rules, paired, runs = block["rules"], block["paired"], block["runs"]
    names = {r: RULE_LABELS[r] for r in rules}

    def mean_of(rule: str, key: str) -> float:
        return sum(run[rule][key] for run in runs) / len(runs)

    said = []
    for metric, what in (
        ("final_robust_acc", "final robust accuracy"),
        ("final_clean_acc", "final clean accuracy"),
        (
            "went_up_fraction",
            "fraction of steps after which the batch robust loss (re-measured by rerunning the "
            "attack) went up",
        ),
    ):
        means = "; ".join(f"{names[r]} {interval_text(rules[r][metric])}" for r in names)
        diffs = "; ".join(
            f"{names[r]} − {names[o]} {difference_text(by[metric], '.3f', quick, subject=names[r])}"
            for r, others in paired.items()
            for o, by in others.items()
        )
        said.append(f"{label}, {what}: {means}. {diffs}.")
    passes = ", ".join(f"{names[r]} {mean_of(r, 'passes'):.0f}" for r in names)
    walls = ", ".join(f"{names[r]} {mean_of(r, 'final_wall'):.1f} s" for r in names)
    said += [
        f"The entropy of DDi's weights over the m = {m} candidates averaged "
        f"{mean_of('ddi', 'mean_weights_entropy'):.3f} over seeds (0: all weight on one "
        f"candidate, as Danskin; log m = {math.log(m):.3f}: equal weights).",
        f"Compute (mean over seeds), forward and backward passes over a batch: {passes} (the "
        f"certified step's search trials not included); training wall-clock: {walls}.",
    ]
    return said


def _certified_sentences(dg: Mapping[str, Any], block: Mapping[str, Any]) -> list[str]:
    """What the certified step's per-step records say: accepted steps, certified against
    realised decrease."""
    said = []
    for rule, ls in block["line_search"].items():
        name = RULE_LABELS[rule]
        if not ls["accepted"]:
            said.append(f"{name}: no step of the {ls['steps']} was accepted.")
            continue
        held = (
            "on every accepted step the realised decrease was at least the certified one"
            if ls["below_certified"] == 0
            else f"on {ls['below_certified']} accepted steps the realised decrease was below "
            "the certified one"
        )
        said.append(
            f"{name}: {ls['accepted']} of {ls['steps']} steps accepted "
            f"({pct(ls['accepted'] / ls['steps'])}), mean step fraction t = {ls['mean_t']:.3f}; "
            f"{held} (smallest margin {ls['min_margin']:.3g} nats). Median certified decrease "
            f"{ls['certified_median']:.3g} nats (c = {dg['armijo']['c']:g} times the "
            f"first-order prediction), median realised decrease {ls['realised_median']:.3g} "
            f"nats ({ls['realised_median'] / ls['certified_median']:.3g} times the certified "
            "one). The realised "
            "decrease is measured by rerunning the attack from the step's random starts, so "
            "the loss it certifies is the attack's, not the exact robust loss; for the same "
            "reason its fraction of steps after which that loss went up is 0 by construction "
            "(a step is kept only where the re-measured loss fell, else θ is left unchanged)."
        )
    return said
