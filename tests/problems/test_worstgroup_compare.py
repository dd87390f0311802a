"""The worst-group comparison (`minimax_problems.worstgroup.compare` and its command) end to end on
tiny sizes, its validation-only tuning, and one rule's run on synthetic data."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from minimax_problems.data.groups import WorstGroupData
from minimax_problems.worstgroup.__main__ import main, result_path
from minimax_problems.worstgroup.compare import METRICS, CompareSettings, pick, tune
from minimax_problems.worstgroup.train import RULES, RunSpec, train_rule

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def synthetic(num_groups: int = 3, n: int = 60, seed: int = 0) -> WorstGroupData:
    """Tiny tabular data: 4 features, 2 classes, groups that differ in their label rule."""
    g = torch.Generator().manual_seed(seed)

    def part(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.randn(m, 4, generator=g)
        group = torch.arange(m) % num_groups
        y = ((x[:, 0] + 0.5 * group * x[:, 1]) > 0).long()
        return x, y, group

    parts = [part(n), part(n // 2), part(n // 2)]
    fields = [t for p in parts for t in p]
    return WorstGroupData(
        "synthetic", *fields, group_names=tuple(f"g{k}" for k in range(num_groups)), num_classes=2
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("worstgroup")
    assert main(["--dataset", "adult", "--tiny", "--out", str(out), "--figures", str(out)]) == 0
    path = result_path(out, "adult", 1)
    return out, json.loads(path.read_text(encoding="utf-8"))


def test_tiny_comparison_has_every_metric(tiny_run: tuple[Path, dict]) -> None:
    out, result = tiny_run
    assert (out / "worstgroup-adult-curves.png").stat().st_size > 10_000
    assert (out / "worstgroup-adult-accuracy.png").stat().st_size > 10_000
    settings = result["settings"]
    assert set(settings) == {"logistic-full", "logistic-minibatch", "mlp-full", "mlp-minibatch"}
    for block in settings.values():
        assert set(block["tuning"]) == {"group_dro", "ddi"}
        for run in block["runs"]:
            assert set(run["rules"]) == set(RULES)
            for name, record in run["rules"].items():
                for metric in METRICS:
                    assert math.isfinite(record[metric]), (name, metric)
                assert len(record["curve"]) == 3 and record["curve"][0][0] == 0
                assert record["curve"][-1][0] == block["spec"]["passes"]
                assert record["cpu_seconds"] > 0 and record["backward"] >= record["steps"]
            assert run["rules"]["ddi"]["went_up_fraction"] == 0  # the certified step
            assert run["rules"]["ddi"]["active_groups"] >= 1
        assert set(block["paired"]) == {"erm", "danskin", "group_dro", "trees"}
        assert block["paired"]["danskin"]["worst_group_test_acc"]["n"] == 2
        assert block["rules"]["ddi"]["worst_group_test_acc"]["low"] is not None
    assert len(result["trees"]["runs"]) == 2
    assert result["config"]["threads"] == 1 and result["config"]["tiny"]


def test_equal_cpu_time_reads_the_fastest_rules_budget(tiny_run: tuple[Path, dict]) -> None:
    _, result = tiny_run
    for block in result["settings"].values():
        for run in block["runs"]:
            records = run["rules"].values()
            assert run["cpu_budget"] == min(r["cpu_seconds"] for r in records)
            for r in records:
                within = [row for row in r["curve"] if row[1] <= run["cpu_budget"] + 1e-9]
                assert r["worst_group_train_loss_at_cpu"] == within[-1][2]
                assert r["worst_group_test_acc_at_cpu"] == within[-1][3]


def test_pick_reads_validation_metrics_only() -> None:
    trials = [
        {"worst_group_val_acc": 0.7, "worst_group_val_loss": 0.5, "worst_group_test_acc": 0.9},
        {"worst_group_val_acc": 0.8, "worst_group_val_loss": 0.6, "worst_group_test_acc": 0.1},
        {"worst_group_val_acc": 0.8, "worst_group_val_loss": 0.4, "worst_group_test_acc": 0.2},
    ]
    assert pick(trials) == 2  # best validation accuracy, then the lower validation loss
    assert pick(trials[:2]) == 1  # not the trial with the best test accuracy
    with pytest.raises(ValueError, match="no trials"):
        pick([])


def test_tuning_never_reads_the_test_part() -> None:
    data = synthetic()
    spec = RunSpec("logistic", passes=3, batch_size=None, lr=0.5, points=2)
    clean = tune(data, spec, "ddi", (0.01, 0.3), seed=0)
    poisoned = replace(data, x_test=torch.full_like(data.x_test, math.nan))
    again = tune(poisoned, spec, "ddi", (0.01, 0.3), seed=0)

    def scores(t: dict) -> list:
        return [{k: v for k, v in trial.items() if k != "cpu_seconds"} for trial in t["trials"]]

    assert scores(again) == scores(clean) and again["chosen"] == clean["chosen"]
    assert clean["chosen"] == clean["trials"][pick(clean["trials"])]["param"]


@pytest.mark.parametrize("batch_size", [None, 16])
def test_one_run_on_synthetic_data(batch_size: int | None) -> None:
    data = synthetic()
    spec = RunSpec("mlp", passes=2, batch_size=batch_size, lr=0.5, points=3)
    first = train_rule(data, spec, "group_dro", 0.1, seed=1)[1]
    again = train_rule(data, spec, "group_dro", 0.1, seed=1)[1]
    assert first["steps"] == (2 if batch_size is None else 2 * math.ceil(60 / 16))
    assert [row[2] for row in first["curve"]] == [row[2] for row in again["curve"]]
    _, ddi = train_rule(data, spec, "ddi", 0.05, seed=1)
    assert ddi["went_up_fraction"] == 0 and ddi["trial_forward"] > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="same number"):
        CompareSettings.tiny("adult", tau_grid=(0.1,))
    with pytest.raises(ValueError, match="dataset must be one of"):
        CompareSettings.full("german")
    with pytest.raises(ValueError, match="batch_size"):
        RunSpec("mlp", passes=1, batch_size=0, lr=0.1)
    with pytest.raises(ValueError, match="needs its parameter"):
        train_rule(synthetic(), RunSpec("mlp", 1, None, 0.1), "ddi", None, seed=0)
