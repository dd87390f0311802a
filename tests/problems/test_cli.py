"""The `minimax` command line: train → interrupt → resume → evaluate → compare, help, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from minimax_problems.cli import main, number
from minimax_problems.training import TIME_FIELDS, load_history

TRAIN = [
    "train",
    "--dataset",
    "synthetic",
    "--model",
    "small_cnn",
    "--epochs",
    "2",
    "--steps",
    "2",
    "--eval-steps",
    "2",
    "--limit-train",
    "48",
    "--limit-test",
    "16",
    "--batch-size",
    "16",
    "--no-progress",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic-cifar")


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "pgd-at"
    assert main([*TRAIN, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    return out


def test_train_writes_a_run(run, capsys) -> None:
    history = load_history(run)
    assert history.status == "completed" and len(history.epochs) == 2
    assert history.meta["model"]["name"] == "small_cnn"
    assert (run / "best.pt").is_file() and (run / "checkpoint.pt").is_file()


def test_resume_via_cli_matches_uninterrupted(run, data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "resumed"
    args = [*TRAIN, "--data-dir", str(data_dir), "--out", str(out)]
    assert main([*args, "--max-steps", "4"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == "max_steps"
    assert main(args) == 2  # the directory holds a run: --resume or --overwrite
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    a = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    def strip(path: Path) -> list[dict]:
        return [
            {k: v for k, v in json.loads(line).items() if k not in TIME_FIELDS}
            for line in (path / "metrics.jsonl").read_text().splitlines()
        ]

    assert strip(out) == strip(run)
    # a different config on resume is refused with a clear message
    assert main([*args, "--resume", "--lr", "0.05"]) == 2
    assert "settings differ" in capsys.readouterr().err


def test_a_rule_alias_trains_as_its_rule(run, data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "pgd"
    assert main([*TRAIN, "--data-dir", str(data_dir), "--out", str(out), "--rule", "pgd"]) == 0
    assert load_history(out).config.rule == "danskin"  # saved by its rule's name
    a = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # pgd is danskin, bitwise


def test_evaluate(run, tmp_path, capsys) -> None:
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            str(run),
            "--attacks",
            "clean,pgd3,apgd-ce3,apgd-t3",
            "--limit",
            "20",
            "--restarts",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["n_examples"] == 20 and result["checkpoint"].endswith("best.pt")
    assert result["model_file"] == "checkpoint"
    assert set(result["robust_acc"]) == {"pgd3", "apgd-ce3", "apgd-t3"}
    assert result["autoattack_first_two"] is not None  # APGD-CE and APGD-T both ran
    assert result["architecture"]["name"] == "small_cnn" and result["rule"] == "danskin"
    assert result["eps"] == pytest.approx(8 / 255)
    assert result["threat_model"] == "Linf" and result["dataset"] == "synthetic"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("threat model: Linf ball, eps = 8/255")
    assert "synthetic test split, 20 examples" in lines[0] and "cascade" in lines[0]
    printed = json.loads(lines[-1])
    assert printed["clean_acc"] == result["clean_acc"] and printed["threat_model"] == "Linf"
    # the default output path, and the checkpoint (not best) file
    assert (
        main(
            [
                "evaluate",
                str(run / "checkpoint.pt"),
                "--attacks",
                "clean",
                "--split",
                "val",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (run / "eval-checkpoint.json").is_file()


def test_another_dataset_from_the_registry(tmp_path, capsys) -> None:
    """--dataset digits (1×8×8 grey images): the model's input shape comes from the data set."""
    out = tmp_path / "digits"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--model",
                "small_cnn",
                "--epochs",
                "1",
                "--steps",
                "1",
                "--eval-steps",
                "1",
                "--limit-train",
                "32",
                "--limit-test",
                "16",
                "--batch-size",
                "16",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    spec = load_history(out).meta["model"]
    assert (spec["in_channels"], spec["image_size"], spec["num_classes"]) == (1, 8, 10)
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(out),
                "--attacks",
                "clean,pgd1",
                "--limit",
                "16",
                "--no-progress",
                "--out",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert "digits test split, 16 examples" in printed[0]
    assert json.loads(printed[-1])["n_examples"] == 16


def test_compare(run, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", str(run), str(run), "--names", "a,b", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "report.html",
        "robust_acc_epoch.png",
        "robust_acc_wall.png",
        "clean_acc_epoch.png",
        "loss_epoch.png",
    } <= names
    assert "<td>a</td>" in (out / "report.html").read_text()
    assert main(["compare", str(run), "--names", "a,b", "--out", str(out)]) == 2
    assert main(["compare", str(tmp_path), "--out", str(out)]) == 2
    assert "not a training run" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["compare"]])
def test_help(command, capsys) -> None:
    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "usage: minimax" in text
    if command:
        assert "examples:" in text
    else:
        assert all(c in text for c in ("train", "evaluate", "compare", "demo"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "x", "--restarts", "0"], "must be an integer ≥ 1"),
        (["train", "--out", "x", "--eps", "eight"], "is not a number"),
        (["train", "--out", "x", "--eps", "1/0"], "is not a number"),
        (["train", "--out", "x", "--model", "vgg"], "invalid choice"),
        (["train", "--out", "x", "--rule", "sgd"], "invalid choice"),
        (["train", "--model", "small_cnn"], "--out"),
        (["train", "--out", "x", "--data-dir", "/nonexistent/cifar"], "--download"),
        (["train", "--out", "x", "--device", "tpu"], "--device"),
        (["train", "--out", "/nonexistent/run", "--resume"], "no checkpoint"),
        (["evaluate", "/nonexistent/best.pt"], "does not exist"),
        (["evaluate", "/nonexistent/best.pt", "--attacks", "cw"], "unknown attack"),
        (["frobnicate"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_amp_needs_cuda(data_dir, tmp_path, capsys) -> None:
    code = main(
        [
            *TRAIN,
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path / "r"),
            "--amp",
            "--device",
            "cpu",
        ]
    )
    assert code == 2 and "CUDA" in capsys.readouterr().err


def test_number_parses_fractions() -> None:
    assert number("8/255") == pytest.approx(8 / 255)
    assert number("0.5") == 0.5
