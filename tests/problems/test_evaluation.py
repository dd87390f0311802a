"""Robust-accuracy evaluation (problems.evaluation) of the reference run's model: fields,
invariants, APGD, attack names and calibration."""

from __future__ import annotations

import json

import pytest
import torch

import minimax
from problems.evaluation import evaluate, expected_calibration_error, parse_attacks


def test_evaluate_fields_and_invariants(data, reference) -> None:
    model, _ = reference
    x, y = data[1]
    model.train()
    result = evaluate(model, (x, y), eps=8 / 255, attacks="clean,pgd3,fgsm", restarts=2,
                      batch_size=20)  # fmt: skip
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
