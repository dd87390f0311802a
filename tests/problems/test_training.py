"""The training loop (minimax_problems.training): checkpoints, resume, signals, every rule."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from minimax_problems.training import (
    TIME_FIELDS,
    TrainConfig,
    load_checkpoint,
    load_history,
    train,
    weights_entropy,
)
from minimax_problems.training.rules import training_rules


def strip_time(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in lines]


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_reference_run_writes_everything(reference) -> None:
    model, history = reference
    out = history.out_dir
    assert history.status == "completed"
    assert {"config.json", "metrics.jsonl", "checkpoint.pt", "best.pt"} <= {
        p.name for p in out.iterdir()
    }
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(steps) == 6 and len(epochs) == 2
    for r in steps:
        assert {
            "epoch",
            "step",
            "robust_loss",
            "robust_loss_after",
            "norm",
            "certificate",
            "weights_entropy",
            "seconds",
            "lr",
        } <= r.keys()
        assert r["robust_loss_after"] is not None  # remeasure=True
        assert 0.0 <= r["weights_entropy"] <= math.log(2) + 1e-9
        assert r["certificate"] <= -(r["norm"] ** 2) + 1e-6 * max(1.0, r["norm"] ** 2)  # DDi
    assert [r["step"] for r in steps] == list(range(1, 7))
    for r in epochs:
        assert {
            "epoch",
            "clean_acc",
            "robust_acc",
            "train_loss",
            "went_up_fraction",
            "mean_norm",
            "mean_certificate",
            "wall",
            "forward",
            "backward",
        } <= r.keys()
        assert 0.0 <= r["robust_acc"] <= 1.0 and 0.0 <= r["clean_acc"] <= 1.0
        assert 0.0 <= r["went_up_fraction"] <= 1.0
    assert epochs[1]["wall"] > epochs[0]["wall"] > 0
    assert epochs[1]["forward"] > epochs[0]["forward"] > 0
    # best.pt holds the best validation robust accuracy
    best = load_checkpoint(out / "best.pt")
    assert best["robust_acc"] == max(r["robust_acc"] for r in epochs)
    assert history.best() == best["robust_acc"]
    # the history reads back from disk
    loaded = load_history(out)
    assert loaded.epochs == history.epochs and loaded.config == history.config
    assert len(loaded.steps()) == 6
    assert json.loads((out / "config.json").read_text())["config"]["rule"] == "ddi"
    assert model.training  # evaluation put it back in train mode


def test_max_steps_then_resume_is_bitwise_equal(
    data, reference, tmp_path, make_model, reference_config
) -> None:
    ref_model, ref_history = reference
    config = TrainConfig(**reference_config)
    h = train(make_model(), data[0], data[1], config, tmp_path, progress=False, max_steps=2)
    assert h.status == "max_steps"
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 2 and ckpt["position"]["index"] == 48  # mid-epoch position
    h = train(
        make_model(), data[0], data[1], config, tmp_path, progress=False, resume=True, max_steps=4
    )  # crosses the epoch boundary
    assert h.status == "max_steps"
    model = make_model()  # a fresh model: everything comes from the checkpoint
    h = train(model, data[0], data[1], config, tmp_path, progress=False, resume=True)
    assert h.status == "completed"
    assert_same_params(model, ref_model)
    assert strip_time(tmp_path / "metrics.jsonl") == strip_time(
        ref_history.out_dir / "metrics.jsonl"
    )
    strip = [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in h.epochs]
    ref = [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in ref_history.epochs]
    assert strip == ref
    # resuming a finished run is a no-op
    again = train(make_model(), data[0], data[1], config, tmp_path, progress=False, resume=True)
    assert again.epochs == h.epochs


def test_sigterm_checkpoints_and_resume_is_bitwise_equal(
    data, reference, tmp_path, make_model, reference_config
) -> None:
    ref_model, ref_history = reference
    config = TrainConfig(**reference_config)
    before = signal.getsignal(signal.SIGTERM)

    def kill_after_four(record: dict) -> None:
        if record["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    h = train(
        make_model(), data[0], data[1], config, tmp_path, progress=False, callback=kill_after_four
    )
    assert h.status == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["epoch"] == 1 and ckpt["position"]["index"] == 24
    model = make_model()
    h = train(model, data[0], data[1], config, tmp_path, progress=False, resume=True)
    assert h.status == "completed"
    assert_same_params(model, ref_model)
    assert strip_time(tmp_path / "metrics.jsonl") == strip_time(
        ref_history.out_dir / "metrics.jsonl"
    )


def test_crash_resumes_from_last_epoch_and_truncates_metrics(
    data, reference, tmp_path, make_model, reference_config
) -> None:
    """A hard crash mid-epoch (no checkpoint) loses that epoch's steps; the JSONL is cut back."""
    ref_model, ref_history = reference
    config = TrainConfig(**reference_config)

    def crash(record: dict) -> None:
        if record["step"] == 5:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_model(), data[0], data[1], config, tmp_path, progress=False, callback=crash)
    assert len(strip_time(tmp_path / "metrics.jsonl")) == 6  # 3 + epoch line + 2 more steps
    model = make_model()
    train(model, data[0], data[1], config, tmp_path, progress=False, resume=True)
    assert_same_params(model, ref_model)
    assert strip_time(tmp_path / "metrics.jsonl") == strip_time(
        ref_history.out_dir / "metrics.jsonl"
    )


def test_checkpoint_write_is_atomic(
    data, tmp_path, monkeypatch, make_model, reference_config
) -> None:
    config = TrainConfig(**{**reference_config, "epochs": 2})
    train(make_model(), data[0], data[1], config, tmp_path, progress=False, max_steps=3)
    good = load_checkpoint(tmp_path / "checkpoint.pt")
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):  # writes half a file, then dies
        real_save({"partial": torch.zeros(10)}, f)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train(make_model(), data[0], data[1], config, tmp_path, progress=False, resume=True)
    monkeypatch.undo()
    after = load_checkpoint(tmp_path / "checkpoint.pt")  # the previous checkpoint, intact
    assert after["step"] == good["step"] == 3
    assert all(torch.equal(after["model"][k], v) for k, v in good["model"].items())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_guards(data, reference, tmp_path, make_model, reference_config) -> None:
    _, ref_history = reference
    out = ref_history.out_dir
    with pytest.raises(ValueError, match=r"settings differ.*restarts"):
        config = TrainConfig(**{**reference_config, "restarts": 3})
        train(make_model(), data[0], data[1], config, out, resume=True, progress=False)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(make_model(), data[0], data[1], TrainConfig(**reference_config), out, progress=False)
    with pytest.raises(ValueError, match="restarts"):
        train(make_model(), data[0], None, TrainConfig(restarts=0), tmp_path, progress=False)
    with pytest.raises(ValueError, match="rule"):
        TrainConfig(rule="sgd").validate()
    with pytest.raises(ValueError, match=r"unknown rule .group-dro.; choose one of danskin"):
        TrainConfig(rule="group-dro").validate()  # needs a finite inner problem
    TrainConfig(rule="pgd").validate()  # an alias of danskin
    with pytest.raises(ValueError, match="CUDA"):
        TrainConfig(amp=True).validate()
    # validated once, when built (the checks of minimax.checks): no invalid config exists
    for bad, match in [
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"steps": -1}, "steps must be an integer ≥ 0"),
        ({"eval_examples": 0}, "eval_examples"),
        ({"lr": float("nan")}, "lr must be a number"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)  # type: ignore[arg-type]
    assert TrainConfig(restarts=2.0).restarts == 2  # type: ignore[arg-type]


def test_per_example_ddi_with_train_mode_batchnorm_is_refused(data, tmp_path, make_model) -> None:
    config = TrainConfig(rule="ddi-example", restarts=2, epochs=1, batch_size=16, steps=1)
    (x, y), _ = data
    with pytest.raises(ValueError, match="batchnorm='eval'"):
        train(make_model(), (x[:16].float() / 255, y[:16]), None, config, tmp_path, progress=False)


@pytest.mark.parametrize("rule", [r for r in training_rules() if r != "ddi"])  # ddi: reference
def test_every_rule_trains(rule, data, tmp_path, make_model) -> None:
    # per-example DDi needs uncoupled examples: BatchNorm with running statistics
    batchnorm = "eval" if rule == "ddi-example" else "per_restart"
    config = TrainConfig(
        rule=rule,
        restarts=2,
        epochs=1,
        batch_size=16,
        steps=1,
        eval_steps=1,
        schedule="cosine",
        augment=False,
        batchnorm=batchnorm,
    )
    (x, y), _ = data
    model = make_model()
    h = train(model, (x[:16].float() / 255, y[:16]), None, config, tmp_path, progress=False)
    assert h.status == "completed" and h.epochs[0]["robust_acc"] is None
    assert math.isfinite(h.epochs[0]["train_loss"])
    assert model.training  # left in train mode; evaluation restores it
    assert not (tmp_path / "best.pt").exists()  # no validation set, no best


def test_weights_entropy() -> None:
    assert weights_entropy(torch.tensor([1.0, 0.0])) == 0.0
    assert weights_entropy(torch.tensor([0.5, 0.5])) == pytest.approx(math.log(2))
    assert weights_entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]])) == pytest.approx(math.log(2) / 2)
