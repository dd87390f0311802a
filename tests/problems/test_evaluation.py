"""Robust-accuracy evaluation (minimax_problems.evaluation) of the reference run's model: fields,
invariants, APGD, attack names and calibration."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import minimax
from minimax_problems.evaluation import (
    calibration_bins,
    ece_from_bins,
    evaluate,
    expected_calibration_error,
    parse_attacks,
)


def test_evaluate_fields_and_invariants(data, reference) -> None:
    model, _ = reference
    x, y = data[1]
    model.train()
    result = evaluate(
        model, (x, y), eps=8 / 255, attacks="clean,pgd3,fgsm", restarts=2, batch_size=20
    )
    assert model.training  # mode restored
    assert result["n_examples"] == y.shape[0] and result["attacks"] == ["clean", "pgd3", "fgsm"]
    assert set(result["robust_acc"]) == {"pgd3", "fgsm"}
    assert result["worst_case_acc"] <= min(result["robust_acc"].values()) <= 1.0
    assert result["worst_case_acc"] <= result["clean_acc"]
    assert result["autoattack_first_two"] is None
    for key in ("clean_ece", "adversarial_ece", "clean_confidence", "adversarial_confidence"):
        assert 0.0 <= result[key] <= 1.0
    json.dumps(result)
    # deterministic under a seed
    again = evaluate(
        model, (x, y), eps=8 / 255, attacks="clean,pgd3,fgsm", restarts=2, batch_size=20
    )
    assert again["robust_acc"] == result["robust_acc"]
    # eps = 0: every attack leaves the clean accuracy
    zero = evaluate(model, (x, y), eps=0.0, attacks=["clean", "pgd2"])
    assert zero["robust_acc"]["pgd2"] == zero["clean_acc"]


def test_first_two_is_apgd_ce_and_targeted_apgd_t(data, reference) -> None:
    """AutoAttack's first two attacks are APGD-CE and the targeted APGD-T, not APGD-DLR."""
    assert (
        parse_attacks("first-two")
        == ["apgd-ce", "apgd-t"]
        == list(minimax.extend.SUITES["first-two"])
    )
    model, _ = reference
    x, y = data[1]
    untargeted = evaluate(model, (x[:16], y[:16]), eps=8 / 255, attacks="clean,apgd-ce5,apgd-dlr5")
    assert untargeted["autoattack_first_two"] is None  # APGD-DLR is not one of the first two
    result = evaluate(
        model, (x[:16], y[:16]), eps=8 / 255, attacks="clean,apgd-ce,apgd-t", dataset="cifar10"
    )
    both = result["autoattack_first_two"]
    assert both is not None and both <= min(result["robust_acc"].values())
    assert both == result["worst_case_acc"]  # the only two attacks that ran
    assert result["suite"] == "first-two" and result["threat_model"] == "Linf"


def test_evaluate_matches_the_library_and_writes_robustbench(data, reference) -> None:
    """The standard suite by `minimax.evaluate` (cascade): the same robust accuracy, and a
    RobustBench record in percentages with dataset, threat model and ε as RobustBench writes."""
    model, _ = reference
    x, y = data[1]
    x = x[:12].float() / 255
    y = y[:12]
    result = evaluate(
        model,
        (x, y),
        eps=8 / 255,
        attacks="standard",
        cascade=True,
        dataset="cifar10",
        batch_size=8,
    )
    assert result["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert result["suite"] == "standard"
    library = minimax.evaluate(model, (x, y), eps=8 / 255, attacks="standard", batch_size=8)
    assert result["worst_case_acc"] == library.robust_acc
    assert result["robust_acc"] == library.per_attack
    record = result["robustbench"]
    assert record == minimax.extend.robustbench_record(library, dataset="cifar10")
    assert record["threat_model"] == "Linf" and record["eps"] == "8/255"
    assert record["dataset"] == "cifar10"
    assert record["autoattack_acc"] == f"{100 * library.robust_acc:.2f}"
    assert record["clean_acc"] == f"{100 * result['clean_acc']:.2f}"


def test_attack_names_and_ece() -> None:
    assert parse_attacks("pgd20, clean,apgd-ce") == ["clean", "pgd20", "apgd-ce"]
    standard = ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert parse_attacks("clean,standard,apgd-ce") == standard
    assert parse_attacks("clean,fast") == ["clean", "apgd-ce", "apgd-t", "square"]
    assert parse_attacks("pgd,square1000") == ["pgd", "square1000"]  # registry names, steps
    for bad in ("cw", "fgsm3", "pgd0", ""):
        with pytest.raises(ValueError, match=r"unknown attack|no attack|at least 1"):
            parse_attacks(bad)
    conf = torch.tensor([0.9, 0.9, 0.6, 0.6])
    correct = torch.tensor([True, False, True, True])
    # bins: {0.9: acc 0.5} and {0.6: acc 1.0} → 0.5·0.4 + 0.5·0.4
    assert expected_calibration_error(conf, correct) == pytest.approx(0.4)


def test_calibration_bins_summed_over_shards_give_the_whole_ece() -> None:
    """ECE is a sum over bins of |Σ correct − Σ confidence| / N, so per-shard bin sums (what each
    rank all-reduces) give the ECE of the whole set, on unequal shards and at bin edges."""
    g = torch.Generator().manual_seed(0)
    conf = torch.rand(101, generator=g)
    conf[:5] = torch.tensor([0.0, 1.0, 1 / 15, 2 / 15, 14 / 15])  # edges and the extremes
    correct = torch.rand(101, generator=g) < conf
    whole = expected_calibration_error(conf, correct)
    shards = [calibration_bins(conf[s:t], correct[s:t]) for s, t in ((0, 7), (7, 60), (60, 101))]
    summed = [[sum(col) for col in zip(*rows)] for rows in zip(*shards)]
    assert ece_from_bins(summed) == pytest.approx(whole, rel=1e-12, abs=1e-15)
    assert ece_from_bins(calibration_bins(conf, correct)) == pytest.approx(whole, rel=1e-12)
    assert sum(calibration_bins(conf, correct)[2]) == 101


def test_an_interrupted_evaluation_resumes_to_the_same_result_bitwise(
    data, reference, tmp_path, monkeypatch
) -> None:
    model, _ = reference
    x, y = data[1]
    x, y = x[:40], y[:40]
    kw = dict(eps=8 / 255, attacks="clean,pgd3,apgd-t2,square30", restarts=2, batch_size=6)
    whole = evaluate(model, (x, y), **kw)  # one pass, no progress file
    path = tmp_path / "eval.progress"
    real, calls = minimax.evaluate, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # in the third chunk: Ctrl-C
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(minimax, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, (x, y), **kw, progress_file=path, chunk=8)  # chunks of 12 (2 batches)
    monkeypatch.setattr(minimax, "evaluate", real)
    saved = torch.load(path, weights_only=True)
    assert saved["done"]["n_examples"] == 24  # two chunks done, written atomically
    resumed = evaluate(model, (x, y), **kw, progress_file=path, chunk=8, resume=True)
    for result in (whole, resumed):
        result.pop("seconds")
    assert resumed == whole
    fresh = evaluate(model, (x, y), **kw, progress_file=path, chunk=8)  # no resume: afresh
    fresh.pop("seconds")
    assert fresh == whole
    with pytest.raises(ValueError, match=r"cannot resume.*seed"):
        evaluate(model, (x, y), **{**kw, "seed": 1}, progress_file=path, chunk=8, resume=True)
    with pytest.raises(ValueError, match=r"cannot resume.*weights"):
        other = copy.deepcopy(model)
        with torch.no_grad():
            next(other.parameters()).add_(1.0)
        evaluate(other, (x, y), **kw, progress_file=path, chunk=8, resume=True)
