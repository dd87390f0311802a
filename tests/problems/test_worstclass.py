"""Worst-class digits: a quick run is deterministic under a seed and JSON-able; the multi-seed
driver's intervals, paired differences and t-tests match scipy; settings are validated."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from scipy import stats

import minimax as mm
from minimax_problems.worstclass import (
    METRICS,
    RULES,
    MeanLoss,
    WorstClassSettings,
    compare_worstclass,
    run_worstclass,
)

TIMES = ("seconds", "cpu_seconds")


def _strip(run: dict) -> dict:
    return {k: {m: v for m, v in r.items() if m not in TIMES} for k, r in run["rules"].items()}


def test_quick_run_is_deterministic_and_json_able():
    s = WorstClassSettings.quick()
    first = run_worstclass(3, s)
    again = run_worstclass(3, s)
    assert _strip(first) == _strip(again)
    assert set(first["rules"]) == set(RULES)
    json.dumps(first)
    for name, record in first["rules"].items():
        assert record["steps"] == s.steps
        for metric in METRICS:
            assert math.isfinite(record[metric]), (name, metric)
        assert 0 <= record["switch_fraction"] <= 1 and 0 <= record["went_up_fraction"] <= 1
    # one backward per step (DDi: the class Gram matrix in one pass)
    assert first["rules"]["danskin"]["backward"] == s.steps
    assert first["rules"]["ddi"]["backward"] >= s.steps


def test_backward_budget_stops_every_rule_at_equal_passes():
    s = replace(WorstClassSettings.quick(), steps=12, budget="backward", rules=("danskin", "ddi"))
    run = run_worstclass(0, s)
    for record in run["rules"].values():
        assert 12 <= record["backward"] < 12 + 10  # the last step may overshoot by < k
    assert run["rules"]["ddi"]["steps"] <= run["rules"]["danskin"]["steps"]


def test_compare_reports_intervals_and_paired_tests():
    s = replace(WorstClassSettings.quick(), steps=8, rules=("danskin", "ddi"))
    out = compare_worstclass([0, 1, 2], s)
    json.dumps(out)
    runs = out["runs"]
    for metric, higher in METRICS.items():
        ddi = [r["rules"]["ddi"][metric] for r in runs]
        other = [r["rules"]["danskin"][metric] for r in runs]
        entry = out["paired"]["danskin"][metric]
        assert entry["diffs"] == pytest.approx([a - b for a, b in zip(ddi, other)])
        if entry["p"] is not None:
            assert entry["p"] == pytest.approx(stats.ttest_rel(ddi, other).pvalue)
        if entry["low"] <= 0 <= entry["high"] or entry["p"] is None:
            assert entry["verdict"] == "no significant difference"
        else:
            better = (entry["low"] > 0) == higher
            assert entry["verdict"] == ("DDi better" if better else "DDi worse")
        summary = out["rules"]["ddi"][metric]
        assert summary["mean"] == pytest.approx(sum(ddi) / 3)
        assert summary["low"] <= summary["mean"] <= summary["high"]
    one = compare_worstclass([0], replace(s, rules=("danskin",)))  # DDi is always added
    assert one["paired"]["danskin"]["test_acc"]["verdict"] == "no significant difference"


def test_adversarial_run_smoke():
    s = replace(WorstClassSettings.quick(), steps=3, adversarial=True, pgd_steps=2)
    run = run_worstclass(0, s)
    for record in run["rules"].values():
        assert math.isfinite(record["worst_class_test_loss"])
        assert record["forward"] == 2 * 3 + (record["backward"] - 3)  # PGD passes not counted


def test_mean_loss_rule_is_the_erm_gradient():
    model = torch.nn.Linear(4, 3)
    problem = mm.WorstGroupProblem.from_module(model, 3)
    x, y = torch.randn(9, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1])
    batch = (x, y, y)
    cands = mm.Enumerate()(problem, problem.parameters(), batch)
    d = MeanLoss()(problem, problem.parameters(), batch, cands)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(d.vector[name], p.grad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rules": ("sgd",)},
        {"steps": 1},
        {"lr": 0.0},
        {"tolerance": -1.0},
        {"budget": "time"},
        {"dro_step_size": math.inf},
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        WorstClassSettings(**kwargs)
