"""One rank of the distributed evaluation test: `evaluate_sharded` over the ranks must give
the one-process counts exactly for deterministic attacks (clean, FGSM from δ = 0). Prints the
JSON of both results; raises on a mismatch."""

from __future__ import annotations

import json

import torch
from torch import nn

from problems.distributed import Ranks, evaluate_sharded
from problems.evaluation import evaluate


def main() -> None:
    torch.set_num_threads(1)
    ranks = Ranks.from_env(timeout=60)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 3))
    x, y = torch.rand(13, 3, 4, 4), torch.randint(0, 3, (13,))  # 13: unequal shards
    kwargs = {
        "eps": 0.1,
        "attacks": ("clean", "fgsm", "pgd2"),
        "batch_size": 4,
        "dataset": "digits",
    }
    one = evaluate(model, (x, y), **kwargs)
    many = evaluate_sharded(evaluate, model, (x, y), ranks, **kwargs)
    for key in ("clean_acc", "worst_case_acc"):
        assert round(one[key] * 13) == round(many[key] * 13), (key, one[key], many[key])
    assert one["robust_acc"]["fgsm"] == many["robust_acc"]["fgsm"]
    assert many["n_examples"] == 13 and many["ranks"] == ranks.world_size
    assert one["robustbench"] == many["robustbench"], (one["robustbench"], many["robustbench"])
    # calibration from per-bin sums over the ranks: the clean ECE is the one-process ECE (up to
    # float32 rounding of the confidences: a shard's batches differ from the whole set's)
    assert abs(one["clean_ece"] - many["clean_ece"]) <= 1e-6, (one["clean_ece"], many["clean_ece"])
    assert 0 <= many["adversarial_ece"] <= 1 and many["calibration_bins"]["clean"] is not None
    assert 0 <= many["robust_acc"]["pgd2"] <= many["clean_acc"]  # random starts: per rank
    print(json.dumps({"one": one["robust_acc"], "many": many["robust_acc"]}))
    ranks.close()


if __name__ == "__main__":
    main()
