"""What the benchmarks compute deterministically: the cost-model table docs/per-example.md shows,
and the paired-ratio interval the PGD comparison reports."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.per_example_cost import MARKERS, cost_rows, markdown
from benchmarks.pgd_attack import paired_ratio
from minimax_problems.pages import block

ROOT = Path(__file__).resolve().parents[1]


def test_the_cost_table_in_the_docs_is_the_one_the_command_writes():
    rows, layers, act = cost_rows("resnet18", [(16, 4), (64, 10), (128, 10)], 10, 19.5)
    page = (ROOT / "docs" / "per-example.md").read_text()
    assert block(page, MARKERS) == markdown(rows, 10, "resnet18", len(layers), act, 19.5), (
        "docs/per-example.md is stale: run python benchmarks/per_example_cost.py "
        "--docs docs/per-example.md"
    )


def test_paired_ratio_is_the_median_of_pairs_with_a_sign_test_interval():
    reference = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]
    ours = [1.0] * 11
    out = paired_ratio(reference, ours)
    assert out["median"] == 6.0 and out["n"] == 11
    # n = 11: P(Bin(11, ½) ≤ 1) = 0.0059 ≤ 2.5% < P(≤ 2) = 0.033, so the interval is (x₂, x₁₀)
    assert out["interval"] == [2.0, 10.0]
    tiny = paired_ratio([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert tiny["interval"] == [1.0, 3.0]  # too few pairs for 95%: the whole range


@pytest.mark.parametrize(
    "module, results, page",
    [
        ("benchmarks.per_example", "docs/results/per-example.json", "docs/per-example.md"),
        ("benchmarks.cifar10", "docs/results/pgd-attack.json", "docs/architecture.md"),
        ("benchmarks.cifar10", "docs/results/pgd-attack-malloc.json", "docs/architecture.md"),
    ],
)
def test_measured_tables_in_the_docs_match_the_committed_runs(module, results, page):
    """The timing tables are written from a committed run's JSON by ``--publish``: the page must
    show exactly what that JSON says (a hand-edited or stale table fails here)."""
    bench = importlib.import_module(module)
    data = json.loads((ROOT / results).read_text())
    text = (ROOT / page).read_text()
    assert block(text, bench.markers(data)) == bench.markdown(data), (
        f"{page} does not show {results}: run python -m {module} --publish {results} {page}"
    )


def test_worstclass_benchmark_runs_and_the_certified_step_never_goes_up(tmp_path):
    from benchmarks.worstclass import main

    out = tmp_path / "wc.json"
    args = ["--seeds", "0", "--steps", "4", "--reps", "1", "--timed-steps", "1", "--mid", "2"]
    result = main([*args, "--out", str(out)])
    assert json.loads(out.read_text())["settings"]["steps"] == 4
    for name in ("ddi_armijo", "ddi_armijo_shrink"):
        assert result["training"][name]["went_up_fraction"] == 0
    for name in ("ddi", "ddi_armijo", "ddi_armijo_shrink"):
        assert result["training"][name]["max_backward_per_step"] <= 2


def _scripts() -> list[str]:
    """The benchmark scripts (those with a ``__main__`` block)."""
    return sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text())


@pytest.mark.parametrize("script", _scripts())
def test_every_benchmark_runs_as_the_readme_says_from_the_repository_root(script):
    # `./run python benchmarks/X.py`: a plain script run, nothing on PYTHONPATH, so the script
    # itself must find the benchmarks package
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout
    readme = (ROOT / "README.md").read_text()
    assert f"benchmarks/{script}" in readme, f"README.md does not list benchmarks/{script}"
