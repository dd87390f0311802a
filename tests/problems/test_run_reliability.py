"""Failures that are loud and lose nothing: a diverging run stops (status / exit 3) and keeps
its last good checkpoint, NaN states are never written or loaded, a run killed before its first
checkpoint restarts, orphan temporary files are removed, resume compares the whole recipe."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import minimax_problems.training.loop as loop_module
from minimax_problems.cli import main
from minimax_problems.files import atomic_file, remove_orphans
from minimax_problems.training import (
    NonFiniteStateError,
    TrainConfig,
    first_non_finite,
    load_checkpoint,
    load_history,
    train,
)
from minimax_problems.training.history import read_jsonl

#: two steps per epoch on the 64 conftest images
FAST = dict(
    rule="danskin", restarts=1, epochs=3, batch_size=32, steps=1, eval_steps=1, eval_examples=8
)

#: one step per epoch on 32 digits images, validation on 8 (seconds on a CPU)
CLI = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "small_cnn",
    "--epochs",
    "3",
    "--steps",
    "1",
    "--eval-steps",
    "1",
    "--limit-train",
    "32",
    "--limit-test",
    "8",
    "--batch-size",
    "32",
    "--val-split",
    "0",
    "--no-progress",
    "--device",
    "cpu",
]


def _poison_from(step: int, model: torch.nn.Module):
    """A callback that writes NaN into a weight after ``step`` steps (a blown-up update)."""

    def callback(record: dict) -> None:
        if record["step"] == step:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")

    return callback


def _all_finite(state: dict) -> bool:
    return first_non_finite(state) is None


@pytest.mark.parametrize("rule", ["danskin", "ddi"])
def test_diverging_run_stops_and_keeps_last_good_checkpoint(
    data, tmp_path, make_model, rule
) -> None:
    model = make_model()
    config = TrainConfig(**{**FAST, "rule": rule, "restarts": 2 if rule == "ddi" else 1})
    history = train(
        model, data[0], data[1], config, tmp_path, progress=False, callback=_poison_from(3, model)
    )  # epoch 2 first step
    assert history.status == "diverged" and "step 4" in (history.reason or "")
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert records[-1]["kind"] == "stopped" and records[-1]["reason"] == history.reason
    assert load_history(tmp_path).status == "diverged"
    good = load_checkpoint(tmp_path / "checkpoint.pt")  # refuses NaN: loading it is the check
    assert good["epoch"] == 1 and good["step"] == 2 and _all_finite(good)
    assert _all_finite(load_checkpoint(tmp_path / "best.pt"))
    assert first_non_finite(dict(model.state_dict())) is not None  # the live model did blow up


def test_non_finite_state_is_never_written(data, tmp_path, make_model, monkeypatch) -> None:
    """Inf in a buffer the forward does not read, after the epoch's last step: the values stay
    finite, the epoch's checkpoint write is refused, the run stops, and the previous checkpoint
    stays. (A buffer the forward reads is caught earlier: see the next test.)"""
    model = make_model()
    model.register_buffer("unused", torch.zeros(3))
    buffers = [model.unused]

    def poison(record: dict) -> None:
        if record["step"] == 4:  # the last step of epoch 2
            buffers[0].fill_(float("inf"))

    history = train(
        model, data[0], data[1], TrainConfig(**FAST), tmp_path, progress=False, callback=poison
    )
    assert history.status == "diverged" and "refusing to write" in (history.reason or "")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_non_finite_validation_stops_the_run(data, tmp_path, make_model) -> None:
    """Inf in a buffer the forward reads (the input normalisation): the end-of-epoch validation
    raises minimax.NonFiniteError, the run stops as diverged, the previous checkpoint stays."""
    model = make_model()
    buffers = [b for b in model.buffers() if b.is_floating_point()]

    def poison(record: dict) -> None:
        if record["step"] == 4:
            buffers[0].fill_(float("inf"))

    history = train(
        model, data[0], data[1], TrainConfig(**FAST), tmp_path, progress=False, callback=poison
    )
    assert history.status == "diverged" and "not finite" in (history.reason or "")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_load_checkpoint_refuses_nan_and_evaluate_exits_2(
    data, tmp_path, make_model, capsys
) -> None:
    config = TrainConfig(**{**FAST, "epochs": 1})
    train(make_model(), data[0], data[1], config, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / "best.pt")
    name = next(iter(state["model"]))
    state["model"][name].view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(NonFiniteStateError, match=name):
        load_checkpoint(tmp_path / "nan.pt")
    assert load_checkpoint(tmp_path / "nan.pt", finite=False)["epoch"] == 1
    assert main(["evaluate", str(tmp_path / "nan.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "NaN or Inf" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_diverging_run_exits_3(tmp_path, monkeypatch, capsys) -> None:
    """A weight turned NaN in epoch 2 (the model diverged: the losses go non-finite): exit 3, the
    reason on stderr and in metrics.jsonl, checkpoint.pt is epoch 1's and finite."""
    real_batch = loop_module._batch

    def batch(run, data, idx):
        if run.epoch >= 1:
            with torch.no_grad():
                next(run.model.parameters()).view(-1)[0] = float("nan")
        return real_batch(run, data, idx)

    monkeypatch.setattr(loop_module, "_batch", batch)
    out = tmp_path / "run"
    assert main([*CLI, "--out", str(out)]) == 3
    captured = capsys.readouterr()
    assert "diverged" in captured.err and "Traceback" not in captured.err
    assert json.loads(captured.out.splitlines()[-1])["status"] == "diverged"
    assert read_jsonl(out / "metrics.jsonl")[-1]["kind"] == "stopped"
    kept = load_checkpoint(out / "checkpoint.pt")
    assert kept["epoch"] == 1 and _all_finite(kept)


def test_cli_nan_batch_is_bad_data_not_divergence(tmp_path, monkeypatch, capsys) -> None:
    """A batch that arrives NaN is a data error (exit 2, the message names the non-finite
    entries), not a diverged model: the run is not reported as diverged."""
    real_batch = loop_module._batch

    def batch(run, data, idx):
        x, y = real_batch(run, data, idx)
        return (x * float("nan"), y) if run.epoch >= 1 else (x, y)

    monkeypatch.setattr(loop_module, "_batch", batch)
    out = tmp_path / "run"
    assert main([*CLI, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "non-finite" in err and "diverged" not in err and "Traceback" not in err
    kept = load_checkpoint(out / "checkpoint.pt")
    assert kept["epoch"] == 1 and _all_finite(kept)


def test_run_killed_before_first_checkpoint_restarts(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    args = [*CLI, "--out", str(out)]

    def killed(run, position=None):  # the process dies as its first checkpoint is written
        raise SystemError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(loop_module, "save_checkpoint", killed)
        assert main(args) == 1  # an unexpected error: one line, no traceback
    err = capsys.readouterr().err
    assert "killed" in err and "--debug" in err and "Traceback" not in err
    assert (out / "config.json").is_file() and not (out / "checkpoint.pt").exists()
    assert read_jsonl(out / "metrics.jsonl")  # the dead run's step lines
    (out / ".checkpoint.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")  # a killed write
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--resume"]) == 0  # nothing to resume yet: starts afresh there
    assert load_history(out).status == "completed"
    assert not (out / ".checkpoint.pt.x1y2z3.tmp").exists()
    steps = [r for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3]  # the dead run's lines were dropped


def test_resume_lists_every_difference(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = [*CLI, "--out", str(out)]
    assert main([*args, "--max-steps", "1"]) == 0
    capsys.readouterr()
    changed = [
        "--activation",
        "celu",
        "--limit-train",
        "16",
        "--val-split",
        "8",
        "--normalization",
        "group",
        "--model",
        "resnet18",
        "--lr",
        "0.02",  # not digits' own 0.05
    ]
    assert main([*args, *changed, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for key in (
        "model.activation",
        "limit_train",
        "val_split",
        "model.normalization",
        "model.name",
        "lr",
    ):
        assert f"{key}: saved" in err, key
    assert "--overwrite" in err
    assert main([*args, "--resume", "--data-dir", str(tmp_path)]) == 0  # data_dir may move


def test_remove_orphans_only_touches_its_names(tmp_path) -> None:
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a.pt") as f:
        f.write(b"x")
        raise RuntimeError  # the writer cleans up after itself
    assert list(tmp_path.iterdir()) == []
    ours = tmp_path / ".a.pt.abc123.tmp"
    theirs = [tmp_path / ".b.pt.abc123.tmp", tmp_path / "a.pt.tmp", tmp_path / ".a.pt.abc.part"]
    for p in [ours, *theirs]:
        p.write_text("x")
    assert remove_orphans(tmp_path, ["a.pt"]) == [ours]
    assert not ours.exists() and all(p.exists() for p in theirs)
    assert remove_orphans(tmp_path / "missing", ["a.pt"]) == []


def test_first_non_finite_names_the_tensor() -> None:
    state = {"model": {"w": torch.ones(3), "n": torch.tensor(5)}, "opt": [torch.zeros(2)]}
    assert first_non_finite(state) is None
    state["opt"][0][1] = -math.inf
    assert first_non_finite(state) == "opt.0"
    assert first_non_finite({"x": torch.tensor([1, 2])}) is None  # integer tensors skipped


def test_config_refuses_out_of_range_values() -> None:
    for field, value in (("momentum", 1.0), ("weight_decay", 1.5), ("eval_steps", 0)):
        with pytest.raises(ValueError, match=field):
            TrainConfig(**{field: value}).validate()


def test_every_test_the_reliability_page_names_exists() -> None:
    """A promise names the test that holds it: each ``test_...`` on the page is defined."""
    root = Path(__file__).parents[2]
    text = (root / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b(?!\.py)", text))  # not the modules
    defined = set()
    for path in (root / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_[a-z0-9_]+)", path.read_text(), re.M))
    assert len(named) > 40 and not named - defined, sorted(named - defined)


def _interrupt_twice(argv: list[str], tmp_path: Path, *, wait_for: str | None) -> tuple[int, str]:
    """Start ``python -m minimax_problems.cli argv``, send SIGINT twice 0.2 s apart (after 0.5 s, or
    once ``wait_for`` appears on stderr); its exit status and stderr."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "minimax_problems.cli", *argv],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        if wait_for is None:
            time.sleep(0.5)
        else:
            assert proc.stderr is not None
            for line in proc.stderr:
                seen.append(line)
                if wait_for in line:
                    break
        for _ in range(2):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen) + err


@pytest.mark.slow
@pytest.mark.parametrize("when", ["starting", "training"])
def test_a_double_ctrl_c_exits_130_without_a_traceback(when, tmp_path) -> None:
    """A second Ctrl-C used to end in a traceback (while torch was being imported, or while
    the interrupted run was exiting)."""
    argv = [a for a in CLI if a != "--no-progress"] + ["--epochs", "200"]  # the last one wins
    argv += ["--out", str(tmp_path / "run")]
    wait_for = "training small_cnn" if when == "training" else None
    status, err = _interrupt_twice(argv, tmp_path, wait_for=wait_for)
    assert status == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1].startswith("minimax"), err
