"""benchmarks/attacks.py: the table docs/custom-loop.md shows is the one its committed JSON gives,
every row states both libraries' budgets, the early-stopping rows find what the full runs find,
and its measurement (passes by a hook, throughput) on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks.attacks import Passes, measure, minimax_runs
from benchmarks.attacks_report import BUDGETS, MARKERS, compare, markdown, stated_budgets
from minimax_problems.pages import block

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "attacks.json"


def _results() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_the_docs_table_is_the_one_the_committed_run_gives():
    page = (ROOT / "docs" / "custom-loop.md").read_text(encoding="utf-8")
    assert block(page, MARKERS) == markdown(_results()), (
        "docs/custom-loop.md does not show docs/results/attacks.json: run python "
        "benchmarks/attacks.py --publish docs/results/attacks.json docs/custom-loop.md"
    )


def test_the_committed_run_states_budgets_passes_and_throughput():
    data = _results()
    assert data["cpu_threads"] == 1 and data["settings"]["seeds"] >= 3
    assert set(data["clean_acc"]) == {"cnn", "mlp"}
    variants = {r["variant"] for r in data["rows"]}
    assert {"standard", "standard, early stop", "standard, torchattacks' budgets"} <= variants
    assert {"pgd", "square"} <= variants
    for row in data["rows"]:
        steps = data["settings"]["pgd_steps" if row["case"] == "pgd" else "steps"]
        assert row["budgets"] == stated_budgets(row["variant"], row["case"], steps)
        assert "--steps" not in str(row["budgets"]) and row["variant"] in BUDGETS
        for lib in ("minimax", "torchattacks"):
            s = row[lib]
            assert len(s["per_seed"]) == data["settings"]["seeds"]
            assert s["forward"] > 0 and s["images_per_cpu_second"] > 0 and s["profile"]
        if row["case"] == "standard":
            for attack, cost in row["minimax"]["per_attack"].items():
                assert cost["passes"]["forward"] >= 1, attack


def test_fab_t_was_as_strong_as_torchattacks_fab_on_both_models_and_norms():
    rows = [r for r in _results()["rows"] if r["variant"] == "fab-t"]
    assert {(r["model"], r["norm"]) for r in rows} == {
        (m, n) for m in ("cnn", "mlp") for n in ("linf", "l2")
    }
    for r in rows:  # robust accuracy: lower is stronger; per seed, within the seeds' noise
        assert len(r["minimax"]["per_seed"]) == len(r["torchattacks"]["per_seed"]) >= 3
        assert r["acc_difference"] <= r["acc_difference_ci95"], (r["model"], r["norm"])


def test_early_stopping_found_the_same_robust_accuracy_on_every_seed():
    rows = {(r["model"], r["variant"]): r for r in _results()["rows"]}
    for model in ("cnn", "mlp"):
        full = rows[(model, "standard")]["minimax"]["per_seed"]
        early = rows[(model, "standard, early stop")]["minimax"]["per_seed"]
        assert early == full, model


# -- the measurement on a tiny model ---------------------------------------------------------------


def _tiny():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    return net, torch.rand(12, 1, 4, 4), torch.randint(0, 10, (12,))


def test_passes_counts_forward_calls_rows_and_gradients():
    net, x, _ = _tiny()
    counter = Passes(net)
    with torch.no_grad():
        net(x)
    net(x[:5].requires_grad_(True)).sum().backward()
    counter.handle.remove()
    net(x)  # after removal: not counted
    assert (counter.calls, counter.grad_calls, counter.rows) == (2, 1, 17)


def test_measure_reports_accuracy_passes_and_throughput():
    net, x, y = _tiny()
    assert list(minimax_runs("standard", "linf", 0.1, steps=3, queries=20)) == [
        "standard",
        "standard, early stop",
        "standard, torchattacks' budgets",
    ]
    ((name, run),) = minimax_runs("pgd", "linf", 0.1, steps=3, queries=20).items()
    out = measure(run, net, x, y, 0, 0.1, "linf", profile=True)
    # 3 steps and the robust accuracy's (PGD checks the model's output at its first step, and
    # an attack reads only the deltas: no forward of its own, no scoring forward)
    assert out["forward"] == 3 + 1
    assert out["forward_with_grad"] == 3 and out["rows"] == 12 * 4
    assert out["images_per_cpu_second"] == pytest.approx(12 / out["cpu_seconds"])
    assert 0 <= out["robust_acc"] <= 1 and out["profile"]
    row = compare("pgd", name, "linf", 0.1, "tiny", [out, out], [out, out], 3)
    assert row["cpu_ratio"] == pytest.approx(1.0) and row["acc_difference"] == 0
    assert row["budgets"] == BUDGETS["pgd"]
    assert "| tiny | pgd |" in markdown(
        {
            "command": "c",
            "torch": "t",
            "torchattacks": "3.5.1",
            "cpu_threads": 1,
            "settings": {"examples": 12, "seeds": 2, "linf": 0.1},
            "rows": [row],
        }
    )
