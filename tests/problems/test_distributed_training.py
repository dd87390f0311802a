"""`minimax train` / evaluation under two gloo ranks on 127.0.0.1 (as torchrun starts them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from minimax.testing.distributed import run_ranks
from problems.training.checkpoint import load_checkpoint

TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "small_cnn",
    "--epochs",
    "2",
    "--steps",
    "2",
    "--eval-steps",
    "1",
    "--limit-train",
    "24",
    "--limit-test",
    "8",
    "--batch-size",
    "8",
    "--rule",
    "ddi",
    "--restarts",
    "2",
    "--no-progress",
    "--dist-batchnorm",
    "sync",
    "--val-split",
    "8",
]


def _cli(args: list[str], world: int = 2) -> None:
    results = run_ranks([sys.executable, "-m", "problems.cli", *args], world, timeout=120)
    for r in results:
        assert r.returncode == 0, f"rank {r.rank}:\n{r.stdout}\n{r.stderr[-3000:]}"
    assert results[0].stdout.strip() and not results[1].stdout.strip()  # rank 0 prints


@pytest.mark.slow
def test_two_rank_run_stopped_and_resumed_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _cli([*TRAIN, *data, "--out", str(whole)])
    _cli([*TRAIN, *data, "--out", str(parts), "--max-steps", "4"])  # stops mid-epoch 2
    assert load_checkpoint(parts / "checkpoint.pt")["step"] == 4
    _cli([*TRAIN, *data, "--out", str(parts), "--resume"])
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(parts / "checkpoint.pt")
    assert a["step"] == b["step"] == 6 and a["epoch"] == 2
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    lines = [(p / "metrics.jsonl").read_text().splitlines() for p in (whole, parts)]
    assert len(lines[0]) == len(lines[1]) == 8  # 6 steps + 2 epochs, written by rank 0 only


@pytest.mark.slow
def test_sharded_evaluation_counts_equal_one_process() -> None:
    worker = str(Path(__file__).with_name("distributed_eval_worker.py"))
    results = run_ranks([sys.executable, worker], 2, timeout=90)
    for r in results:
        assert r.returncode == 0, f"rank {r.rank}:\n{r.stdout}\n{r.stderr[-3000:]}"
        assert '"fgsm"' in r.stdout


@pytest.mark.slow
def test_sharded_evaluation_interrupted_and_resumed_equals_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    worker = str(Path(__file__).with_name("distributed_eval_worker.py"))
    results = run_ranks([sys.executable, worker, "resume", str(tmp_path)], 2, timeout=120)
    for r in results:
        assert r.returncode == 0, f"rank {r.rank}:\n{r.stdout}\n{r.stderr[-3000:]}"
        assert '"resumed"' in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "eval.progress.rank0of2",
        "eval.progress.rank1of2",
    ]
