"""`minimax train` / evaluation under two gloo ranks on 127.0.0.1 (as torchrun starts them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from minimax.testing.distributed import run_ranks
from minimax_problems.training.checkpoint import load_checkpoint

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
    results = run_ranks([sys.executable, "-m", "minimax_problems.cli", *args], world, timeout=120)
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


#: runs ``minimax`` with argv[1:], where "{r:a|b}" becomes a on rank 0 and b on rank 1
_PER_RANK = (
    "import os, re, sys\n"
    "from minimax_problems.cli import main\n"
    "r = int(os.environ['RANK'])\n"
    "pick = lambda m: m.group(1).split('|')[r]\n"
    "sys.exit(main([re.sub(r'\\{r:([^}]*)\\}', pick, a) for a in sys.argv[1:]]))\n"
)


@pytest.mark.slow
def test_ranks_started_with_different_options_exit_2_naming_them(tmp_path: Path) -> None:
    """Ranks launched with different --lr and --seed used to train together to the end (exit
    0); different --restarts aborted inside gloo after ~25 s. Now one all-gather of the whole
    configuration at start: exit 2 on every rank, one line naming each differing option."""
    argv = [*TRAIN, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    argv += ["--lr", "{r:0.1|0.05}", "--seed", "{r:0|1}", "--dist-timeout", "60"]
    results = run_ranks([sys.executable, "-c", _PER_RANK, *argv], 2, timeout=120)
    for r in results:
        assert r.returncode == 2, f"rank {r.rank}:\n{r.stdout}\n{r.stderr[-3000:]}"
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith("minimax train: error: the 2 ranks"), lines[0]
        assert "--lr (rank 0: 0.1, rank 1: 0.05)" in lines[0], lines[0]
        assert "--seed (rank 0: 0, rank 1: 1)" in lines[0], lines[0]
        assert "--restarts" not in lines[0] and "--data-dir" not in lines[0]
    assert not (tmp_path / "run").exists()  # refused before the run directory was opened


@pytest.mark.slow
def test_evaluate_ranks_with_different_options_exit_2(tmp_path: Path) -> None:
    from minimax_problems.models import build_model

    model = build_model(
        "small_cnn", normalization="none", num_classes=10, in_channels=1, image_size=8
    )
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    argv = [
        "evaluate",
        str(tmp_path / "weights.pt"),
        "--model",
        "small_cnn",
        "--normalization",
        "none",
    ]
    argv += ["--dataset", "digits", "--data-dir", str(tmp_path / "data"), "--limit", "8"]
    argv += ["--attacks", "clean,fgsm", "--eps", "{r:0.1|0.2}", "--no-progress"]
    results = run_ranks([sys.executable, "-c", _PER_RANK, *argv], 2, timeout=120)
    for r in results:
        assert r.returncode == 2, f"rank {r.rank}:\n{r.stdout}\n{r.stderr[-3000:]}"
        assert "--eps (rank 0: 0.1, rank 1: 0.2)" in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("eval-*.json"))
