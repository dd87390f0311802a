"""CLI errors: every user error exits 2 with one line and no traceback (``--debug`` shows it),
ranges are checked at parse time, every ``--help`` shows the defaults, ``--paper`` presets."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from problems.cli import COMMANDS, build_parser, explicit, main
from problems.cli.train import PAPER, finish_args

#: a run that would train if its arguments were good (digits ship offline)
BASE = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "small_cnn",
    "--epochs",
    "1",
    "--steps",
    "1",
    "--limit-train",
    "16",
    "--limit-test",
    "8",
    "--val-split",
    "0",
    "--no-progress",
    "--device",
    "cpu",
]

BAD = {
    "eps-forgot-255": (["--eps", "8"], "did you mean 8/255"),
    "eps-huge": (["--eps", "1e308"], "did you mean 8/255"),
    "eps-huge-allowed": (["--eps", "1e308", "--allow-large-eps"], "diameter"),
    "step-size-over-1": (["--step-size", "2"], "--allow-large-eps"),
    "eps-nan": (["--eps", "nan"], "finite"),
    "eps-negative": (["--eps", "-0.1"], "≥ 0"),
    "eps-div-zero": (["--eps", "1/0"], "not a number"),
    "momentum-5": (["--momentum", "5"], "[0, 1)"),
    "momentum-1": (["--momentum", "1"], "[0, 1)"),
    "weight-decay-2": (["--weight-decay", "2"], "[0, 1)"),
    "lr-negative": (["--lr", "-1"], "≥ 0"),
    "lr-inf": (["--lr", "inf"], "finite"),
    "eval-steps-0": (["--eval-steps", "0"], "≥ 1"),
    "eval-every-0": (["--eval-every", "0"], "≥ 1"),
    "batch-size-0": (["--batch-size", "0"], "≥ 1"),
    "restarts-0": (["--restarts", "0"], "≥ 1"),
    "steps-negative": (["--steps", "-1"], "≥ 0"),
    "max-steps-0": (["--max-steps", "0"], "≥ 1"),
    "seed-text": (["--seed", "x"], "invalid int"),
    "unknown-rule": (["--rule", "sgd"], "invalid choice"),
    "unknown-option": (["--frobnicate", "3"], "unrecognized"),
    "device-tpu": (["--device", "tpu"], "--device"),
    "amp-on-cpu": (["--amp"], "CUDA"),
    "val-split-too-big": (["--val-split", "100000"], "leaves no training images"),
    "resume-and-overwrite": (["--resume", "--overwrite"], "contradict"),
    "ddi-example-batchnorm": (["--rule", "ddi-example", "--norm", "batch"], "BatchNorm"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_user_errors_exit_2_with_one_line(case, tmp_path, capsys) -> None:
    extra, needle = BAD[case]
    assert main([*BASE, "--out", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and needle in err, err
    assert err.startswith(("minimax train: error:", "minimax: error:"))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["evaluate", "/nonexistent/best.pt"], "does not exist"),
        (["evaluate", "/etc/hostname"], "cannot read checkpoint"),
        (["compare", "/nonexistent-run", "--out", "/tmp/x"], "not a training run"),
        (["demo", "--eps", "-1"], "> 0"),
        (["frobnicate"], "invalid choice"),
        (["train", "--out", "/etc/hostname", "--dataset", "digits"], "is a file"),
    ],
)
def test_other_commands_exit_2_with_one_line(argv, needle, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err, err


def test_out_of_range_values_are_refused_before_any_work(tmp_path) -> None:
    """Parse-time checks: no run directory is created."""
    assert main([*BASE, "--out", str(tmp_path / "run"), "--eval-steps", "0"]) == 2
    assert main([*BASE, "--out", str(tmp_path / "run"), "--eps", "8"]) == 2
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(tmp_path) -> None:
    argv = [*BASE, "--out", str(tmp_path / "run"), "--device", "tpu"]
    for where in (["--debug", *argv], [*argv, "--debug"]):
        with pytest.raises(Exception, match="--device"):
            main(where)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_help_shows_the_defaults(command, capsys) -> None:
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    sub = _subparsers()[command]
    shown = 0
    for action in sub._actions:
        default = action.default
        if not action.option_strings or action.nargs == 0 or default is None:
            continue
        flag = action.option_strings[0]
        start = text.index(f" {flag} ", text.index("options:"))
        assert "default" in text[start : start + 600], (command, flag)
        shown += 1
    assert shown >= {"train": 20, "evaluate": 5, "compare": 0, "demo": 3}[command]


def test_train_help_states_the_key_defaults(capsys) -> None:
    main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in (
        "(default: 200)",
        "(default: resnet18)",
        "(default: relu)",
        "(default: batch)",
        "(default: danskin)",
        "(default: 8/255)",
    ):
        assert needle in text, needle
    assert "--paper" in text


def _train_args(*extra: str) -> argparse.Namespace:
    argv = ["train", "--out", "runs/x", *extra]
    args = build_parser().parse_args(argv)
    finish_args(args, explicit(argv))
    return args


def test_paper_preset_and_overrides() -> None:
    args = _train_args("--paper")
    assert {k: getattr(args, k) for k in PAPER} == PAPER
    assert PAPER == {
        "model": "resnet18",
        "activation": "celu",
        "norm": "group",
        "rule": "ddi",
        "restarts": 10,
        "steps": 7,
        "eval_steps": 20,
    }
    assert args.eps == pytest.approx(8 / 255) and args.epochs == 200 and args.lr == 0.1
    override = _train_args("--restarts", "4", "--paper", "--activation", "silu", "-m", "5")
    assert override.restarts == 5 and override.activation == "silu" and override.rule == "ddi"
    plain = _train_args()
    assert plain.rule == "danskin" and plain.restarts == 1 and plain.activation == "relu"


def test_paper_preset_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "cifar10.md").read_text()
    assert "--paper" in doc
