"""CLI errors: every user error exits 2 with one line and no traceback (``--debug`` shows it),
ranges are checked at parse time, every ``--help`` shows the defaults, ``--paper`` presets."""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from minimax_problems.cli import COMMANDS, build_parser, explicit, main
from minimax_problems.cli.train_arguments import PAPER, finish_args

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
    "ddi-example-batchnorm": (["--rule", "ddi-example", "--normalization", "batch"], "BatchNorm"),
    "restarts-million": (["--restarts", "1000000"], "at most 1,000"),
    "eval-restarts-million": (["--eval-restarts", "1000000"], "at most 1,000"),
    "seed-2-pow-70": (["--seed", str(2**70)], "at most 9,223,372,036,854,775,807"),
    "seed-negative": (["--seed", "-1"], "≥ 0"),
    "steps-billion": (["--steps", "1000000000"], "at most 10,000"),
    "eval-steps-billion": (["--eval-steps", "1000000000"], "at most 10,000"),
    "dist-timeout-huge": (["--dist-timeout", "1e300"], "at most"),
    "out-empty": (["--out", ""], "--out: is empty"),
    "data-dir-empty": (["--data-dir", " "], "--data-dir: is empty"),
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
        "normalization": "group",
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


def test_the_documented_paper_flags_are_the_preset() -> None:
    """docs/cifar10.md spells out what ``--paper`` sets: those flags, parsed by the CLI, give
    the same arguments as ``--paper`` itself (a changed preset or page fails here)."""
    doc = " ".join((Path(__file__).parents[2] / "docs" / "cifar10.md").read_text().split())
    found = re.search(r"`--paper` sets the DDi column \(`([^`]*)`\)", doc)
    assert found, "docs/cifar10.md no longer says which flags --paper sets"
    spelled = found.group(1).split()
    by_flags, by_preset = _train_args(*spelled), _train_args("--paper")
    assert {k: getattr(by_flags, k) for k in PAPER} == PAPER
    assert {**vars(by_flags), "paper": True} == vars(by_preset)


def test_a_mistyped_flag_is_reported_by_its_command(tmp_path, capsys) -> None:
    """argparse's top-level parser used to report a subcommand's unknown option as
    ``minimax: error``; the command that received it now names itself."""
    for command, argv in (
        ("train", [*BASE, "--out", str(tmp_path / "run"), "--epochz", "3"]),
        ("evaluate", ["evaluate", "model.pt", "--atacks", "pgd"]),
        ("compare", ["compare", "a", "--out", "x", "--nmes", "A"]),
        ("demo", ["demo", "--quik"]),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"minimax {command}: error: unrecognized arguments"), err
        assert f"(see minimax {command} --help)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["evaluate", "compare", "demo"])
def test_an_empty_out_is_refused_by_every_command(command, capsys) -> None:
    """``--out ''`` (an unset $RUN) meant the current directory: train wrote config.json,
    checkpoint.pt, best.pt and metrics.jsonl there with exit 0."""
    argv = {"evaluate": ["evaluate", "m.pt"], "compare": ["compare", "a"], "demo": ["demo"]}
    assert main([*argv[command], "--out", ""]) == 2
    err = capsys.readouterr().err
    assert "--out: is empty" in err and len(err.splitlines()) == 1, err


def test_an_empty_out_writes_nothing_in_the_current_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*BASE, "--out", ""]) == 2
    assert list(tmp_path.iterdir()) == []


def test_help_lists_the_commands_without_importing_torch(tmp_path) -> None:
    """``minimax --help`` took seconds: it imported torch. Now the commands are imported when
    used; the subprocess's sys.modules shows torch was not loaded."""
    code = (
        "import sys\n"
        "from minimax_problems.cli import main\n"
        "for argv in (['--help'], [], ['--version'], ['trian']):\n"
        "    main(argv)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr
    assert "train" in done.stdout and "digits" in done.stdout  # the listing


def test_command_summaries_are_the_modules_help() -> None:
    from minimax_problems.cli import SUMMARIES

    assert {name: module.HELP for name, module in COMMANDS.items()} == SUMMARIES


# ---- files the user hands in: every unreadable or odd one is exit 2 with one line ----


def _one_line_exit_2(argv: list[str], capsys: Any) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "weights_only" not in err and "arbitrary code" not in err, err  # no advice to unlock
    return err


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def _bad_checkpoints(good: bytes) -> dict[str, bytes]:
    evil = io.BytesIO()
    torch.save({"config": {}, "model": _Evil()}, evil)
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "text": b"hello, this is not a checkpoint\n",
        "code-carrying": evil.getvalue(),
        "not-a-checkpoint": _saved({"w": torch.zeros(2)}),
    }


def _saved(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli-files") / "run"
    assert main([*BASE, "--out", str(out), "--seed", "0"]) == 0
    return out


@pytest.mark.parametrize(
    "case", ["truncated", "empty", "text", "code-carrying", "not-a-checkpoint"]
)
def test_resume_from_an_unreadable_checkpoint_exits_2(case, trained_run, tmp_path, capsys) -> None:
    """``train --resume`` with a truncated, text or code-carrying checkpoint.pt exited 1, and
    for the last relayed torch's advice to re-run with weights_only=False."""
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(_bad_checkpoints(checkpoint.read_bytes())[case])
    err = _one_line_exit_2([*BASE, "--out", str(out), "--resume"], capsys)
    assert err.startswith("minimax train: error:") and str(checkpoint) in err, err
    if case == "code-carrying":
        assert "can run code" in err and "refused" in err
    capsys.readouterr()
    # evaluate reads the same files with the same words
    err = _one_line_exit_2(["evaluate", str(checkpoint), "--no-progress"], capsys)
    needle = "plain state_dict" if case == "not-a-checkpoint" else "cannot read checkpoint"
    assert needle in err, err


def test_a_full_disk_exits_2_naming_the_file(tmp_path, monkeypatch, capsys) -> None:
    """torch.save on a full disk raised ``enforce fail at inline_container.cc`` (exit 1)."""
    import minimax_problems.files

    def full(obj: Any, f: Any) -> None:
        f.write(b"PK\x03\x04")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . unexpected pos 6342848 vs 6342736"
        )

    monkeypatch.setattr(minimax_problems.files.torch, "save", full)
    out = tmp_path / "run"
    err = _one_line_exit_2([*BASE, "--out", str(out)], capsys)
    assert "enforce fail" not in err and ("checkpoint.pt" in err or "best.pt" in err), err
    assert "refused the write" in err or "No space left" in err, err
    assert not list(out.glob(".*.tmp")) and not (out / "checkpoint.pt").exists()


def test_full_disk_message_says_no_space_when_the_disk_is_full(tmp_path, monkeypatch) -> None:
    import minimax_problems.files
    from minimax_problems.files import atomic_save

    class Full:
        f_bavail, f_frsize = 3, 4096

    def refuse(obj: Any, f: Any) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 52")

    monkeypatch.setattr(minimax_problems.files.torch, "save", refuse)
    monkeypatch.setattr(minimax_problems.files.os, "statvfs", lambda path: Full())
    with pytest.raises(OSError, match="No space left on device: 12,288 bytes free") as info:
        atomic_save({}, tmp_path / "checkpoint.pt")
    assert info.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []


def _checkpoint_with(trained_run: Path, tmp_path: Path, **changes: Any) -> Path:
    state = torch.load(trained_run / "checkpoint.pt", weights_only=True)
    for where, value in changes.items():
        part, _, key = where.partition("__")
        if key:
            state[part] = {**state[part], key: value}
        else:
            state[part] = value
    path = tmp_path / "odd" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save(state, path)
    return path


ODD = {
    "model-name": {"meta__model": {"name": "gpt5", "num_classes": 10}},
    "num-classes-text": {"meta__model": {"name": "small_cnn", "num_classes": "ten"}},
    "num-classes-negative": {"meta__model": {"name": "small_cnn", "num_classes": -3}},
    "unknown-model-entry": {"meta__model": {"name": "small_cnn", "depth": 7}},
    "dataset-unknown": {"meta__dataset": "imagenet"},
    "data-dir-number": {"meta__data_dir": 5},
    "val-split-text": {"meta__val_split": "all"},
    "config-list": {"config": [1, 2]},
    "eps-text": {"config__eps": "8/255"},
    "eps-nan": {"config__eps": float("nan")},
    "threat-unknown": {"config__threat": "l7"},
    "normalization-unknown": {"meta__model": {"name": "small_cnn", "normalization": "layer"}},
    "old-name-normalization-unknown": {"meta__model": {"name": "small_cnn", "norm": "layer"}},
    "seed-float": {"config__seed": 0.5},
}


@pytest.mark.parametrize("case", list(ODD), ids=list(ODD))
def test_evaluate_refuses_an_odd_checkpoint_meta(case, trained_run, tmp_path, capsys) -> None:
    path = _checkpoint_with(trained_run, tmp_path, **ODD[case])
    err = _one_line_exit_2(["evaluate", str(path), "--no-progress", "--limit", "4"], capsys)
    assert "has an odd" in err and str(path) in err, err


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
def test_evaluate_refuses_integer_and_complex_weights(dtype, tmp_path, capsys) -> None:
    from minimax_problems.models import build_model

    model = build_model(
        "small_cnn", normalization="none", num_classes=10, in_channels=1, image_size=8
    )
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "weights.pt")
    argv = [
        "evaluate",
        str(tmp_path / "weights.pt"),
        "--model",
        "small_cnn",
        "--normalization",
        "none",
    ]
    argv += ["--dataset", "digits", "--data-dir", str(tmp_path), "--limit", "4", "--no-progress"]
    err = _one_line_exit_2(argv, capsys)
    kind = "integer" if dtype == torch.int64 else "complex"
    assert f"holds {kind} values" in err and "not weights of this model" in err, err


def test_evaluate_refuses_a_torchscript_model_of_the_wrong_input_size(tmp_path, capsys) -> None:
    """A CIFAR-sized TorchScript model on the 8×8 digits crashed inside the evaluation."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    torch.jit.save(torch.jit.script(model), tmp_path / "model.ts")
    argv = ["evaluate", str(tmp_path / "model.ts"), "--torchscript", "--dataset", "digits"]
    argv += ["--data-dir", str(tmp_path), "--limit", "4", "--eps", "0.1", "--no-progress"]
    err = _one_line_exit_2(argv, capsys)
    assert "cannot take this data set's images (1×8×8" in err, err
    few = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))  # 3 of 10 classes
    torch.jit.save(torch.jit.script(few), tmp_path / "few.ts")
    argv[1] = str(tmp_path / "few.ts")
    err = _one_line_exit_2(argv, capsys)
    assert "returns 3" in err and "10 classes" in err, err


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "eval-best.json"])
def test_compare_names_the_corrupt_file(name, trained_run, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    with open(run / name, "a") as f:
        f.write('{"kind": "epoch", "epo')  # a write cut short
    if name == "config.json":
        (run / name).write_text('{"config": {"rule": ')
    err = _one_line_exit_2(["compare", str(run), "--out", str(tmp_path / "report")], capsys)
    assert err.startswith("minimax compare: error:") and str(run / name) in err, err


# ---- defaults: the digits recipe, threads ----


def test_digits_get_their_own_recipe_and_explicit_options_win() -> None:
    """``--dataset digits`` trained with CIFAR-10's recipe (200 epochs, ε = 8/255, crop and
    flip): two epochs ended at clean accuracy 0.19."""
    from minimax_problems.cli.train_arguments import DATASET_DEFAULTS

    args = _train_args("--dataset", "digits")
    for name, value in DATASET_DEFAULTS["digits"].items():
        assert getattr(args, name) == value, name
    args = _train_args(
        "--dataset", "digits", "--epochs", "3", "--eps", "0.2", "--model", "resnet18"
    )
    assert (args.epochs, args.eps, args.model, args.lr) == (3, 0.2, "resnet18", 0.05)
    args = _train_args("--dataset", "digits", "--paper")  # --paper's entries win over digits'
    assert (args.model, args.steps, args.epochs) == ("resnet18", 7, 10)
    args = _train_args("--dataset", "cifar10")
    assert (args.model, args.epochs, args.eps, args.no_augment) == ("resnet18", 200, 8 / 255, False)


def test_train_help_states_the_digits_recipe(capsys) -> None:
    main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Adversarial training on CIFAR-10" not in text and "8x8 digits" in text
    assert "--dataset digits has its own" in text
    assert "training epochs [digits: 10] (default: 200)" in text
    assert "[digits: small_cnn] (default: resnet18)" in text


@pytest.mark.slow
def test_the_digits_recipe_trains_well_in_seconds(tmp_path, capsys) -> None:
    """Four of its ten epochs already reach a clean accuracy the CIFAR-10 recipe never did."""
    argv = ["train", "--dataset", "digits", "--epochs", "4", "--out", str(tmp_path / "run")]
    assert main([*argv, "--no-progress", "--device", "cpu", "--data-dir", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["clean_acc"] > 0.85 and record["robust_acc"] > 0.5, record


def test_threads_default_follows_idle_cores_and_omp(monkeypatch) -> None:
    from minimax_problems.cli import types

    monkeypatch.setattr(types.os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(types.os, "getloadavg", lambda: (7.5, 7.0, 6.0))  # a loaded 2-core box
    assert types.default_threads() == 1
    monkeypatch.setattr(types.os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setattr(types.os, "getloadavg", lambda: (0.2, 0.1, 0.1))
    assert types.default_threads() == 4  # capped
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert types.default_threads() == 2  # 32 idle cores shared by 16 ranks
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert types.set_threads(None) == before  # the user's OMP_NUM_THREADS is kept
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert types.set_threads(None) == 2
        assert types.set_threads(3) == 3
    finally:
        torch.set_num_threads(before)
