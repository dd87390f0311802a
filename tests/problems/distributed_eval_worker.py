"""One rank of the distributed evaluation tests: `evaluate_sharded` over the ranks must give
the one-process counts exactly for deterministic attacks (clean, FGSM from δ = 0). Prints the
JSON of both results; raises on a mismatch. With ``resume DIR``: an evaluation interrupted after
two chunks on every rank, then resumed from the ranks' progress files in DIR, must equal an
uninterrupted one, bitwise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

import minimax
from minimax_problems.distributed import Ranks, evaluate_sharded, rank_file
from minimax_problems.evaluation import evaluate


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


def resume(directory: Path) -> None:
    torch.set_num_threads(1)
    ranks = Ranks.from_env(timeout=60)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 3))
    x = torch.rand(30, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)  # correct on every clean input: every example is attacked
    kwargs = {"eps": 0.05, "attacks": ("clean", "pgd2", "square10"), "batch_size": 2}
    whole = evaluate_sharded(evaluate, model, (x, y), ranks, **kwargs)
    path = directory / "eval.progress"
    real, calls = minimax.evaluate, []

    def interrupted(*args: object, **options: object) -> minimax.Evaluation:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **options)  # type: ignore[arg-type]

    minimax.evaluate = interrupted  # type: ignore[assignment]
    try:
        evaluate_sharded(evaluate, model, (x, y), ranks, **kwargs, progress_file=path, chunk=4)
        raise AssertionError("not interrupted")
    except KeyboardInterrupt:
        pass
    minimax.evaluate = real
    saved = torch.load(rank_file(path, ranks), weights_only=True)  # this rank's own file
    assert saved["done"]["n_examples"] == 8, saved["done"]["n_examples"]
    again = evaluate_sharded(
        evaluate, model, (x, y), ranks, **kwargs, progress_file=path, chunk=4, resume=True
    )
    for result in (whole, again):
        result.pop("seconds")
    assert again == whole, (again, whole)
    assert whole["worst_case_acc"] < whole["clean_acc"] == 1.0  # the attacks broke some
    print(json.dumps({"resumed": again["robust_acc"]}))
    ranks.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["resume"]:
        resume(Path(sys.argv[2]))
    else:
        main()
