"""CIFAR-10 throughput: adversarial-training rules and the PGD attack against a textbook loop.

Run::

    PYTHONPATH=. python benchmarks/cifar10.py [--quick] [--out benchmarks/results/cifar10.json]

Measures, on CIFAR-shaped random data (3×32×32 in [0, 1], 10 classes):

1. training images per second of one `minimax.MinMaxOptimizer` step for PGD-AT (``Danskin``,
   m = 1), ``MaxLoss`` and ``DDi`` (same m, PGD-7) with the small CNN on CPU, and ResNet-18 on
   CUDA when present (skipped otherwise, and said so);
2. the PGD attack's throughput, `minimax.PGD` through `minimax.ModuleProblem` against a plain
   textbook loop (requires_grad, loss, backward, sign step, clamp) on the same model and batch,
   timed side by side in interleaved repetitions (medians); ratio = textbook time / minimax time,
   also as the median of per-repetition (paired) ratios with a 95% sign-test interval, next to
   an A/A control (the textbook loop against itself: the harness's own noise); measured by
   ``benchmarks/pgd_attack.py``, published from here (``--publish``);
3. on CUDA: the estimated time of one CIFAR-10 epoch (50 000 images) of PGD-AT and DDi (m = 10)
   with ResNet-18, from the measured steps.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

import minimax
from benchmarks.cifar_setup import ALPHA, EPS, cifar_batch, seeded_model, sync
from benchmarks.pgd_attack import bench_attack
from minimax_problems.pages import replace_block

RULES: dict[str, Callable[[], minimax.extend.Rule]] = {
    "PGD-AT": minimax.Danskin,
    "MaxLoss": minimax.MaxLoss,
    "DDi": minimax.DDi,
}


def _optimizer(model: nn.Module, rule: str, m: int, steps: int) -> minimax.MinMaxOptimizer:
    problem = minimax.ModuleProblem(model, perturbation=minimax.LinfBall(EPS, lower=0.0, upper=1.0))
    sgd = torch.optim.SGD(problem.parameters().values(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return minimax.MinMaxOptimizer(
        problem, sgd, minimax.PGD(steps, ALPHA, restarts=m), RULES[rule]()
    )


def bench_training(
    model_name: str,
    settings: list[tuple[str, int]],
    *,
    steps: int,
    batch: int,
    reps: int,
    device: torch.device,
    **model_kwargs: Any,
) -> list[dict[str, Any]]:
    """Seconds per outer step (median of ``reps``, rules interleaved) → images per second."""
    x, y = cifar_batch(batch, device)
    runs = []
    for rule, m in settings:
        model = seeded_model(model_name, device, **model_kwargs)
        model.train()
        opt = _optimizer(model, rule, m, steps)
        opt.step((x, y))  # warm-up (vmap tracing, allocator)
        runs.append((rule, m, model, opt, []))
    for _ in range(reps):
        for *_, opt, times in runs:
            sync(device)
            t0 = time.perf_counter()
            opt.step((x, y))
            sync(device)
            times.append(time.perf_counter() - t0)
    base = statistics.median(runs[0][4])
    return [
        {
            "model": model_name,
            "rule": rule,
            "m": m,
            "pgd_steps": steps,
            "batch": batch,
            "seconds_per_step": statistics.median(times),
            "min_seconds_per_step": min(times),
            "images_per_second": batch / statistics.median(times),
            "cost_vs_first": statistics.median(times) / base,
            "device": str(device),
        }
        for rule, m, _model_, _opt, times in runs
    ]


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


MARKERS = ("<!-- bench:pgd -->", "<!-- /bench:pgd -->")


def markers(result: dict[str, Any]) -> tuple[str, str]:
    """The page block a result goes to: ``bench:pgd``, or ``bench:pgd-malloc`` for a run with
    glibc's allocator tuned by environment variables (MALLOC_*)."""
    if result.get("environment"):
        return ("<!-- bench:pgd-malloc -->", "<!-- /bench:pgd-malloc -->")
    return MARKERS


def markdown(result: dict[str, Any]) -> str:
    """The PGD-attack table docs/architecture.md shows (between `MARKERS`), from a results JSON."""
    env = "".join(f"{k}={v} " for k, v in sorted(result.get("environment", {}).items()))
    out = [
        f"Command: `{env}{result['command']}` (torch {result['torch']}, "
        f"{result['cpu_threads']} thread(s)); times are medians, paired ratios the median of "
        "per-repetition ratios with a 95% sign-test interval.",
        "",
        "| model | device | PGD steps | batch | repetitions | textbook + score / minimax.PGD "
        "(same work) | textbook / minimax.PGD (bare loop) | A/A control (textbook + score "
        "against itself) | one iteration (s) | step + projection outside the model, "
        "minimax / textbook (ms) | minor page faults per call, minimax / textbook + score "
        "(median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in result["attack"]:

        def paired(key: str, a: dict[str, Any] = a) -> str:
            low, high = a[f"{key}_interval"]
            return f"{a[key]:.3f}× [{low:.3f}, {high:.3f}]"

        out.append(
            f"| {a['model']} | {a['device']} | {a['pgd_steps']} | {a['batch']} | "
            f"{a['reps']} | {paired('paired_ratio_same_work')} | {paired('paired_ratio')}"
            f" | {paired('control_ratio')} | {a['iteration_seconds']:.3f} | "
            f"{1e3 * a['step_seconds_minimax']:.2f} / {1e3 * a['step_seconds_textbook']:.2f}"
            f" | {a['minor_faults_minimax'][1]:,.0f} / "
            f"{a['minor_faults_textbook_scored'][1]:,.0f} |"
        )
    return "\n".join(out)


def publish(results: Path, docs: Path) -> None:
    """Write the PGD table of ``results`` (a JSON this script wrote) into ``docs``."""
    result = json.loads(results.read_text())
    replace_block(docs, markers(result), markdown(result))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (≈ 30 s)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cifar10.json"))
    parser.add_argument("--batch", type=int, default=None, help="CPU batch (default 64; 32 quick)")
    parser.add_argument("--restarts", "-m", type=int, default=4, help="m on CPU (default 4)")
    parser.add_argument(
        "--attack-only",
        action="store_true",
        help="only the PGD attack against the textbook loop (section 2)",
    )
    parser.add_argument(
        "--attack-reps",
        type=int,
        default=None,
        help="repetitions of the attack comparison (default 19; 7 quick)",
    )
    parser.add_argument(
        "--publish",
        nargs=2,
        type=Path,
        metavar=("RESULTS_JSON", "DOCS_PAGE"),
        help="measure nothing: write the PGD table of a results JSON into a page "
        "(docs/results/pgd-attack.json docs/architecture.md)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: steadier timings on a shared CPU)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.publish:
        publish(*args.publish)
        print(f"wrote the PGD table of {args.publish[0]} into {args.publish[1]}")
        return 0
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": "PYTHONPATH=. python benchmarks/cifar10.py"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
        "torch": torch.__version__,
        "minimax": minimax.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "environment": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }
    training, attack, cuda = _measure(args)
    result.update(
        training=training, attack=attack, cuda_results=cuda, seconds=time.perf_counter() - started
    )
    print(_training_table(training))
    print()
    print(_attack_table(attack))
    if cuda:
        print()
        for k, v in cuda["epoch_seconds_estimated"].items():
            print(f"ResNet-18 one epoch (50k images), {k}: ≈ {v / 60:.1f} min (estimated)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {args.out} in {result['seconds']:.0f} s", file=sys.stderr)
    return 0


def _measure(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict[str, Any] | None]:
    """Sections 1 and 2 on CPU (the small CNN), then on CUDA when present (ResNet-18) with
    section 3's epoch estimates: (training rows, attack rows, the CUDA results or None)."""
    cpu = torch.device("cpu")
    batch = args.batch or (32 if args.quick else 64)
    reps = 3 if args.quick else 9
    m = args.restarts
    print(
        f"CPU ({torch.get_num_threads()} threads), small_cnn, batch {batch}, PGD-7, "
        f"{reps} interleaved repetitions, medians",
        file=sys.stderr,
    )
    training = (
        []
        if args.attack_only
        else bench_training(
            "small_cnn",
            [("PGD-AT", 1), ("PGD-AT", m), ("MaxLoss", m), ("DDi", m)],
            steps=7,
            batch=batch,
            reps=reps,
            device=cpu,
        )
    )
    attack_reps = args.attack_reps or 2 * reps + 1
    attack = [bench_attack("small_cnn", steps=10, batch=batch, reps=attack_reps, device=cpu)]
    cuda: dict[str, Any] | None = None
    if torch.cuda.is_available() and not args.attack_only:
        gpu = torch.device("cuda")
        kw = dict(activation="celu", normalization="group")
        training += bench_training(
            "resnet18",
            [("PGD-AT", 1), ("MaxLoss", 10), ("DDi", 10)],
            steps=7,
            batch=128,
            reps=reps,
            device=gpu,
            **kw,
        )
        attack.append(
            bench_attack("resnet18", steps=10, batch=128, reps=2 * reps + 1, device=gpu, **kw)
        )
        epoch = {
            r["rule"] + f" (m={r['m']})": 50_000 / r["images_per_second"]
            for r in training
            if r["device"].startswith("cuda")
        }
        cuda = {"device": torch.cuda.get_device_name(0), "epoch_seconds_estimated": epoch}
    else:
        print("CUDA not available: the ResNet-18 GPU measurements are skipped.", file=sys.stderr)
    return training, attack, cuda


def _training_table(training: list[dict[str, Any]]) -> str:
    """Section 1's rows as a plain-text table."""
    return _table(
        [
            [
                r["model"],
                r["device"],
                r["rule"],
                r["m"],
                r["pgd_steps"],
                r["batch"],
                f"{r['seconds_per_step']:.3f}",
                f"{r['min_seconds_per_step']:.3f}",
                f"{r['images_per_second']:.1f}",
                f"{r['cost_vs_first']:.2f}×",
            ]
            for r in training
        ],
        [
            "model",
            "device",
            "rule",
            "m",
            "PGD steps",
            "batch",
            "s/step (median)",
            "s/step (min)",
            "images/s",
            "cost vs PGD-AT m=1",
        ],
    )


def _attack_table(attack: list[dict[str, Any]]) -> str:
    """Section 2's rows (ratios with their paired intervals) as a plain-text table."""
    return _table(
        [
            [
                a["model"],
                a["device"],
                a["pgd_steps"],
                a["batch"],
                f"{a['textbook_seconds']:.3f}",
                f"{a['textbook_scored_seconds']:.3f}",
                f"{a['minimax_seconds']:.3f}",
                f"{a['ratio']:.2f}×",
                f"{a['ratio_same_work']:.2f}×",
                "{:.3f}× [{:.3f}, {:.3f}]".format(a["paired_ratio"], *a["paired_ratio_interval"]),
                "{:.3f}× [{:.3f}, {:.3f}]".format(
                    a["paired_ratio_same_work"], *a["paired_ratio_same_work_interval"]
                ),
                "{:.3f}× [{:.3f}, {:.3f}]".format(a["control_ratio"], *a["control_ratio_interval"]),
            ]
            for a in attack
        ],
        [
            "model",
            "device",
            "PGD steps",
            "batch",
            "textbook s",
            "textbook+score s",
            "minimax.PGD s",
            "textbook / minimax",
            "textbook+score / minimax",
            "paired textbook / minimax [95%]",
            "paired textbook+score / minimax [95%]",
            "A/A control [95%]",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
