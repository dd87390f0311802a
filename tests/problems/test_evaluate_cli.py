"""``minimax evaluate`` on every kind of model file (a train checkpoint is in test_cli.py): a
state_dict with --model, a TorchScript file, refusals (unsafe, non-finite, mismatched), the
threat-model line and the RobustBench record, on the digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from minimax_problems.cli import main
from minimax_problems.models import build_model

DIGITS = ["--dataset", "digits", "--limit", "12", "--no-progress", "--eps", "0.1"]
ARCH = ["--model", "small_cnn", "--activation", "celu", "--normalization", "group", "--width", "8"]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        "small_cnn",
        activation="celu",
        normalization="group",
        in_channels=1,
        image_size=8,
        num_classes=10,
        width=8,
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "digits.pt"
    torch.save(_model().state_dict(), path)
    return path


def _last_json(capsys) -> tuple[list[str], dict]:
    lines = capsys.readouterr().out.splitlines()
    return lines, json.loads(lines[-1])


def test_state_dict_with_model(weights, tmp_path, capsys) -> None:
    out, rb = tmp_path / "eval.json", tmp_path / "rb.json"
    assert (
        main(
            [
                "evaluate",
                str(weights),
                *ARCH,
                *DIGITS,
                "--attacks",
                "clean,first-two",
                "--out",
                str(out),
                "--robustbench",
                str(rb),
            ]
        )
        == 0
    )
    lines, printed = _last_json(capsys)
    assert lines[0].startswith("threat model: Linf ball, eps = 0.1 (0.1)")
    assert "digits test split, 12 examples" in lines[0]
    assert "attacks: apgd-ce, apgd-t (first-two suite, cascade)" in lines[0]
    result = json.loads(out.read_text())
    assert result["model_file"] == "state_dict" and result["architecture"]["width"] == 8
    assert result["dataset"] == "digits" and result["threat_model"] == "Linf"
    assert result["autoattack_first_two"] == result["worst_case_acc"] == printed["worst_case_acc"]
    record = json.loads(rb.read_text())
    assert record == result["robustbench"]
    assert {"dataset", "threat_model", "eps", "clean_acc", "robust_acc", "footnote"} <= set(record)
    assert record["eps"] == "0.1" and record["dataset"] == "digits"
    assert record["clean_acc"] == f"{100 * result['clean_acc']:.2f}"  # percentages


def test_standard_suite_record_is_autoattack_acc(weights, tmp_path, capsys) -> None:
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                str(weights),
                *ARCH,
                *DIGITS,
                "--limit",
                "6",
                "--threat",
                "l2",
                "--eps",
                "0.5",
                "--out",
                str(out),
            ]
        )
        == 0
    )  # default: clean + standard suite
    result = json.loads(out.read_text())
    assert result["attacks"] == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert result["suite"] == "standard" and result["threat_model"] == "L2"
    record = result["robustbench"]
    assert record["threat_model"] == "L2" and record["eps"] == "0.5"
    assert record["autoattack_acc"] == f"{100 * result['worst_case_acc']:.2f}"
    assert "standard suite" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_needs_the_flag(tmp_path, capsys) -> None:
    path = tmp_path / "digits.ts"
    model = _model().eval()
    torch.jit.trace(model, torch.rand(2, 1, 8, 8)).save(str(path))
    assert main(["evaluate", str(path), *DIGITS, "--attacks", "clean,pgd2"]) == 2
    assert "--torchscript if you trust" in capsys.readouterr().err
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                str(path),
                "--torchscript",
                *DIGITS,
                "--attacks",
                "clean,pgd2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["model_file"] == "torchscript"
    # the same weights as a state dict: the same numbers
    sd = tmp_path / "same.pt"
    torch.save(model.state_dict(), sd)
    assert (
        main(
            [
                "evaluate",
                str(sd),
                *ARCH,
                *DIGITS,
                "--attacks",
                "clean,pgd2",
                "--out",
                str(tmp_path / "sd.json"),
            ]
        )
        == 0
    )
    same = json.loads((tmp_path / "sd.json").read_text())
    assert (same["clean_acc"], same["robust_acc"]) == (result["clean_acc"], result["robust_acc"])
    # --torchscript on a file that is not one
    assert main(["evaluate", str(sd), "--torchscript", *DIGITS]) == 2
    assert "not a TorchScript archive" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda m: m.state_dict(), [], "give its architecture with --model"),
        (lambda m: m.state_dict(), ["--model", "small_cnn", "--width", "16"], "do not fit"),
        (
            lambda m: {
                k: v.fill_(float("nan")) if k.endswith("bias") else v
                for k, v in m.state_dict().items()
            },
            ARCH,
            "non-finite weights",
        ),
        (lambda m: {"w": [1, 2]}, ARCH, "holds no state dict"),
        (lambda m: m, ARCH, "cannot read"),  # a pickled module: refused by weights_only
    ],
)
def test_refusals(make, args, message, tmp_path, capsys) -> None:
    path = tmp_path / "weights.pt"
    torch.save(make(_model()), path)
    assert main(["evaluate", str(path), *args, *DIGITS, "--attacks", "clean"]) == 2
    assert message in capsys.readouterr().err


def _checkpoint(tmp_path: Path, model: torch.nn.Module, *, old_names: bool = False) -> Path:
    """A run directory with a best.pt laid out as `minimax train` writes it (``old_names``: with
    the entries ``norm`` that files written before their renaming hold)."""
    spec = {
        "name": "small_cnn",
        "activation": "celu",
        "normalization": "group",
        "num_classes": 10,
        "in_channels": 1,
        "image_size": 8,
        "width": 8,
    }
    config = {"eps": 0.1, "threat": "linf", "seed": 0, "rule": "ddi"}
    if old_names:
        spec["norm"] = spec.pop("normalization")
        config["norm"] = config.pop("threat")
    run = tmp_path / "run"
    run.mkdir()
    torch.save(
        {
            "model": model.state_dict(),
            "epoch": 3,
            "robust_acc": 0.5,
            "clean_acc": 0.9,
            "config": config,
            "meta": {"model": spec, "dataset": "digits"},
        },
        run / "best.pt",
    )
    return run


@pytest.mark.parametrize("old_names", [False, True])
def test_train_checkpoint_names_its_model_data_and_threat(tmp_path, capsys, old_names) -> None:
    run = _checkpoint(tmp_path, _model(), old_names=old_names)
    assert (
        main(["evaluate", str(run), "--attacks", "clean,pgd2", "--limit", "8", "--no-progress"])
        == 0
    )
    result = json.loads((run / "eval-best.json").read_text())
    assert result["model_file"] == "checkpoint" and result["dataset"] == "digits"
    assert result["eps"] == 0.1 and result["rule"] == "ddi" and result["epochs"] == 3
    assert result["threat_model"] == "Linf" and result["architecture"]["normalization"] == "group"
    assert main(["evaluate", str(run), *ARCH, "--attacks", "clean", "--no-progress"]) == 2
    assert "drop --model" in capsys.readouterr().err


def test_train_checkpoint_with_non_finite_weights_is_refused(tmp_path, capsys) -> None:
    model = _model()
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("inf"))
    run = _checkpoint(tmp_path, model)
    assert main(["evaluate", str(run), "--attacks", "clean", "--no-progress"]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert not (run / "eval-best.json").exists()


def test_an_l_inf_radius_over_one_needs_the_flag_train_takes_too(weights, capsys) -> None:
    """eps = 2 covers the whole pixel range: refused with a hint (as in `minimax train`), and
    evaluated with --allow-large-eps (every image is then reachable: robust accuracy 0 is
    possible, and the run must not crash)."""
    args = ["evaluate", str(weights), *ARCH, *DIGITS, "--eps", "2", "--attacks", "clean,pgd2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "wider than the input range [lower, upper] = [0, 1]" in err and "--allow-large-eps" in err
    )
    assert main([*args, "--allow-large-eps"]) == 0
    _, printed = _last_json(capsys)
    assert printed["eps"] == 2.0


def test_an_interrupted_evaluation_resumes_with_the_flag(weights, tmp_path, monkeypatch) -> None:
    import minimax

    args = [
        "evaluate",
        str(weights),
        *ARCH,
        "--dataset",
        "digits",
        "--limit",
        "30",
        "--no-progress",
        "--eps",
        "0.3",
        "--attacks",
        "clean,pgd2,square10",
        "--batch-size",
        "4",
        "--chunk",
        "8",
    ]
    whole, parts = tmp_path / "whole.json", tmp_path / "parts.json"
    assert main([*args, "--out", str(whole)]) == 0
    assert not (tmp_path / "whole.json.progress").exists()  # removed once the result is written
    real, calls = minimax.evaluate, []

    def interrupted(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(minimax, "evaluate", interrupted)
    assert main([*args, "--out", str(parts)]) == 130  # Ctrl-C: the progress file stays
    monkeypatch.setattr(minimax, "evaluate", real)
    progress = torch.load(tmp_path / "parts.json.progress", weights_only=True)
    assert progress["done"]["n_examples"] == 16 and not parts.exists()
    assert main([*args, "--out", str(parts), "--resume"]) == 0
    a, b = (json.loads(p.read_text()) for p in (whole, parts))
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert main([*args, "--out", str(parts), "--resume", "--seed", "3"]) == 0  # nothing to resume
