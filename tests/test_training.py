"""The training loop (problems.training), evaluation and report: checkpoints, resume, signals."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch

import minimax
from problems.evaluation import evaluate, expected_calibration_error, parse_attacks
from problems.models import build_model
from problems.report import compare_runs, plot_curves, write_html
from problems.training import (
    TIME_FIELDS,
    RunHistory,
    TrainConfig,
    load_checkpoint,
    load_history,
    train,
    weights_entropy,
)

N_TRAIN, N_VAL = 64, 32


@pytest.fixture(scope="module")
def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Tiny CIFAR-shaped data: uint8 images [N, 3, 32, 32] with a learnable colour signal."""
    g = torch.Generator().manual_seed(0)
    n = N_TRAIN + N_VAL
    y = torch.arange(n) % 10
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.5 + (y.float() / 20)[:, None, None, None]
    x = (x * 255).round().clamp(0, 255).to(torch.uint8)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", width=8)  # BatchNorm: running statistics are checkpointed


CONFIG = dict(rule="ddi", restarts=2, epochs=2, batch_size=24, steps=2, eval_steps=2,
              remeasure=True)  # fmt: skip  (64 images / 24 = 3 steps per epoch, last one short)


def strip_time(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in lines]


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> tuple[torch.nn.Module, RunHistory]:
    """An uninterrupted run."""
    model = small_model()
    out = tmp_path_factory.mktemp("reference")
    history = train(model, data[0], data[1], TrainConfig(**CONFIG), out, progress=False)
    return model, history


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
        assert {"epoch", "step", "robust_loss", "robust_loss_after", "norm", "certificate",
                "weights_entropy", "seconds", "lr"} <= r.keys()  # fmt: skip
        assert r["robust_loss_after"] is not None  # remeasure=True
        assert 0.0 <= r["weights_entropy"] <= math.log(2) + 1e-9
        assert r["certificate"] <= -r["norm"] ** 2 + 1e-6 * max(1.0, r["norm"] ** 2)  # DDi
    assert [r["step"] for r in steps] == list(range(1, 7))
    for r in epochs:
        assert {"epoch", "clean_acc", "robust_acc", "train_loss", "went_up_fraction",
                "mean_norm", "mean_certificate", "wall", "forward", "backward"} <= r.keys()
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


def test_max_steps_then_resume_is_bitwise_equal(data, reference, tmp_path) -> None:
    ref_model, ref_history = reference
    config = TrainConfig(**CONFIG)
    h = train(small_model(), data[0], data[1], config, tmp_path, progress=False, max_steps=2)
    assert h.status == "max_steps"
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 2 and ckpt["position"]["index"] == 48  # mid-epoch position
    h = train(small_model(), data[0], data[1], config, tmp_path, progress=False, resume=True,
              max_steps=4)  # fmt: skip  (crosses the epoch boundary)
    assert h.status == "max_steps"
    model = small_model()  # a fresh model: everything comes from the checkpoint
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
    again = train(small_model(), data[0], data[1], config, tmp_path, progress=False, resume=True)
    assert again.epochs == h.epochs


def test_sigterm_checkpoints_and_resume_is_bitwise_equal(data, reference, tmp_path) -> None:
    ref_model, ref_history = reference
    config = TrainConfig(**CONFIG)
    before = signal.getsignal(signal.SIGTERM)

    def kill_after_four(record: dict) -> None:
        if record["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    h = train(small_model(), data[0], data[1], config, tmp_path, progress=False,
              callback=kill_after_four)  # fmt: skip
    assert h.status == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["epoch"] == 1 and ckpt["position"]["index"] == 24
    model = small_model()
    h = train(model, data[0], data[1], config, tmp_path, progress=False, resume=True)
    assert h.status == "completed"
    assert_same_params(model, ref_model)
    assert strip_time(tmp_path / "metrics.jsonl") == strip_time(
        ref_history.out_dir / "metrics.jsonl"
    )


def test_crash_resumes_from_last_epoch_and_truncates_metrics(data, reference, tmp_path) -> None:
    """A hard crash mid-epoch (no checkpoint) loses that epoch's steps; the JSONL is cut back."""
    ref_model, ref_history = reference
    config = TrainConfig(**CONFIG)

    def crash(record: dict) -> None:
        if record["step"] == 5:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(small_model(), data[0], data[1], config, tmp_path, progress=False, callback=crash)
    assert len(strip_time(tmp_path / "metrics.jsonl")) == 6  # 3 + epoch line + 2 more steps
    model = small_model()
    train(model, data[0], data[1], config, tmp_path, progress=False, resume=True)
    assert_same_params(model, ref_model)
    assert strip_time(tmp_path / "metrics.jsonl") == strip_time(
        ref_history.out_dir / "metrics.jsonl"
    )


def test_checkpoint_write_is_atomic(data, tmp_path, monkeypatch) -> None:
    config = TrainConfig(**{**CONFIG, "epochs": 2})
    train(small_model(), data[0], data[1], config, tmp_path, progress=False, max_steps=3)
    good = load_checkpoint(tmp_path / "checkpoint.pt")
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):  # writes half a file, then dies
        real_save({"partial": torch.zeros(10)}, f)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train(small_model(), data[0], data[1], config, tmp_path, progress=False, resume=True)
    monkeypatch.undo()
    after = load_checkpoint(tmp_path / "checkpoint.pt")  # the previous checkpoint, intact
    assert after["step"] == good["step"] == 3
    assert all(torch.equal(after["model"][k], v) for k, v in good["model"].items())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_guards(data, reference, tmp_path) -> None:
    _, ref_history = reference
    out = ref_history.out_dir
    with pytest.raises(ValueError, match=r"config differs.*restarts"):
        train(small_model(), data[0], data[1], TrainConfig(**{**CONFIG, "restarts": 3}), out,
              resume=True, progress=False)  # fmt: skip
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(small_model(), data[0], data[1], TrainConfig(**CONFIG), out, progress=False)
    with pytest.raises(ValueError, match="restarts"):
        train(small_model(), data[0], None, TrainConfig(restarts=0), tmp_path, progress=False)
    with pytest.raises(ValueError, match="rule"):
        TrainConfig(rule="pgd").validate()
    with pytest.raises(ValueError, match="CUDA"):
        TrainConfig(amp=True).validate()


def test_per_example_ddi_with_train_mode_batchnorm_is_refused(data, tmp_path) -> None:
    config = TrainConfig(rule="ddi-example", restarts=2, epochs=1, batch_size=16, steps=1)
    (x, y), _ = data
    with pytest.raises(ValueError, match="batchnorm='eval'"):
        train(small_model(), (x[:16].float() / 255, y[:16]), None, config, tmp_path,
              progress=False)  # fmt: skip


@pytest.mark.parametrize("rule", ["danskin", "maxloss", "ddi-example"])
def test_every_rule_trains(rule, data, tmp_path) -> None:
    # per-example DDi needs uncoupled examples: BatchNorm with running statistics
    batchnorm = "eval" if rule == "ddi-example" else "per_restart"
    config = TrainConfig(rule=rule, restarts=2, epochs=1, batch_size=16, steps=1, eval_steps=1,
                         schedule="cosine", augment=False, batchnorm=batchnorm)  # fmt: skip
    (x, y), _ = data
    model = small_model()
    h = train(model, (x[:16].float() / 255, y[:16]), None, config, tmp_path, progress=False)
    assert h.status == "completed" and h.epochs[0]["robust_acc"] is None
    assert math.isfinite(h.epochs[0]["train_loss"])
    assert model.training  # left in train mode; evaluation restores it
    assert not (tmp_path / "best.pt").exists()  # no validation set, no best


def test_weights_entropy() -> None:
    assert weights_entropy(torch.tensor([1.0, 0.0])) == 0.0
    assert weights_entropy(torch.tensor([0.5, 0.5])) == pytest.approx(math.log(2))
    assert weights_entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]])) == pytest.approx(
        math.log(2) / 2
    )


# ------------------------------------------------------------------------------------------------
# evaluation


def test_evaluate_fields_and_invariants(data, reference) -> None:
    model, _ = reference
    x, y = data[1]
    model.train()
    result = evaluate(model, (x, y), eps=8 / 255, attacks="clean,pgd3,fgsm", restarts=2,
                      batch_size=20)  # fmt: skip
    assert model.training  # mode restored
    assert result["n_examples"] == N_VAL and result["attacks"] == ["clean", "pgd3", "fgsm"]
    assert set(result["robust_acc"]) == {"pgd3", "fgsm"}
    assert result["worst_case_acc"] <= min(result["robust_acc"].values()) <= 1.0
    assert result["worst_case_acc"] <= result["clean_acc"]
    assert result["autoattack_first_two"] is None
    for key in ("clean_ece", "adversarial_ece", "clean_confidence", "adversarial_confidence"):
        assert 0.0 <= result[key] <= 1.0
    json.dumps(result)
    # deterministic under a seed
    again = evaluate(model, (x, y), eps=8 / 255, attacks="clean,pgd3,fgsm", restarts=2,
                     batch_size=20)  # fmt: skip
    assert again["robust_acc"] == result["robust_acc"]
    # eps = 0: every attack leaves the clean accuracy
    zero = evaluate(model, (x, y), eps=0.0, attacks=["clean", "pgd2"])
    assert zero["robust_acc"]["pgd2"] == zero["clean_acc"]


@pytest.mark.skipif(not hasattr(minimax, "APGD"), reason="minimax.APGD is not exported yet")
def test_evaluate_apgd(data, reference) -> None:
    model, _ = reference
    x, y = data[1]
    result = evaluate(model, (x[:16], y[:16]), eps=8 / 255, attacks="clean,apgd-ce5,apgd-dlr5")
    both = result["autoattack_first_two"]
    assert both is not None and both <= min(result["robust_acc"].values())


def test_attack_names_and_ece() -> None:
    assert parse_attacks("pgd20, clean,apgd-ce") == ["clean", "pgd20", "apgd-ce"]
    with pytest.raises(ValueError, match="unknown attack"):
        parse_attacks("cw")
    conf = torch.tensor([0.9, 0.9, 0.6, 0.6])
    correct = torch.tensor([True, False, True, True])
    # bins: {0.9: acc 0.5} and {0.6: acc 1.0} → 0.5·0.4 + 0.5·0.4
    assert expected_calibration_error(conf, correct) == pytest.approx(0.4)


# ------------------------------------------------------------------------------------------------
# report


def test_plots_and_html(reference, tmp_path) -> None:
    _, history = reference
    png = plot_curves({"ddi": history, "list": [{"epoch": 1, "robust_acc": 0.1}]},
                      x="wall", y="robust_acc", path=tmp_path / "a.png", title="t")  # fmt: skip
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    page = write_html(tmp_path / "r.html", "a <b> & c", [("fig", "a.png", "x < y")],
                      [("tab", ["k", "v"], [["<i>", 0.5]])])  # fmt: skip
    text = page.read_text()
    assert "a &lt;b&gt; &amp; c" in text and "x &lt; y" in text and "&lt;i&gt;" in text
    assert 'src="a.png"' in text
    report = compare_runs([history.out_dir, history.out_dir], tmp_path / "cmp")
    assert report.is_file() and (tmp_path / "cmp" / "robust_acc_wall.png").is_file()
