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
   an A/A control (the textbook loop against itself: the harness's own noise);
3. on CUDA: the estimated time of one CIFAR-10 epoch (50 000 images) of PGD-AT and DDi (m = 10)
   with ResNet-18, from the measured steps.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import minimax
from minimax.sets.arguments import trusted
from problems.models import build_model
from problems.pages import replace_block

EPS, ALPHA = 8 / 255, 2 / 255
RULES: dict[str, Callable[[], minimax.extend.Rule]] = {
    "PGD-AT": minimax.Danskin,
    "MaxLoss": minimax.MaxLoss,
    "DDi": minimax.DDi,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _data(batch: int, device: torch.device, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    return x.to(device), y.to(device)


def _model(name: str, device: torch.device, **kwargs: Any) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, **kwargs).to(device)


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
    x, y = _data(batch, device)
    runs = []
    for rule, m in settings:
        model = _model(model_name, device, **model_kwargs)
        model.train()
        opt = _optimizer(model, rule, m, steps)
        opt.step((x, y))  # warm-up (vmap tracing, allocator)
        runs.append((rule, m, model, opt, []))
    for _ in range(reps):
        for *_, opt, times in runs:
            _sync(device)
            t0 = time.perf_counter()
            opt.step((x, y))
            _sync(device)
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


def textbook_pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    alpha: float,
    steps: int,
    generator: torch.Generator,
    score: bool = False,
) -> Tensor:
    """The plain PGD loop: random start, then `steps` signed-gradient steps with clamping.

    ``score=True`` adds one forward at the result for the per-example losses [B], which
    `minimax.PGD` always computes (the candidates' values): the same work as minimax.
    """
    delta = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x + delta), y)
        loss.backward()
        with torch.no_grad():
            delta = delta + alpha * delta.grad.sign()  # type: ignore[union-attr]
            delta = delta.clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    if score:
        with torch.no_grad():
            nn.functional.cross_entropy(model(x + delta), y, reduction="none")
    return delta.detach()


def _minor_faults() -> int:
    """Minor page faults of this process so far (first touches of fresh memory pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def step_seconds(x: Tensor, reps: int = 200) -> tuple[float, float]:
    """Median seconds of one ascent step + projection outside the model: the set's
    (`LinfBall.ascent_step` then `project`, as minimax.PGD runs them) and the textbook's three
    lines, on tensors shaped like x."""
    ball = minimax.LinfBall(EPS, lower=0.0, upper=1.0)
    gen = torch.Generator(device=x.device).manual_seed(0)
    delta = ((torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * EPS).unsqueeze(0)
    grad = torch.randn(delta.shape, generator=gen, device=x.device)
    event = x.ndim - 1

    def ours() -> None:
        ball.project(ball.ascent_step(delta, grad, ALPHA, event_ndim=event), x, event_ndim=event)

    def textbook() -> None:
        d = (delta + ALPHA * grad.sign()).clamp(-EPS, EPS)
        (x + d).clamp(0, 1) - x

    out = []
    with trusted():  # as inside an inner solver's call
        for fn in (ours, textbook):
            times = []
            for _ in range(reps):
                _sync(x.device)
                t0 = time.perf_counter()
                fn()
                _sync(x.device)
                times.append(time.perf_counter() - t0)
            out.append(statistics.median(times))
    return out[0], out[1]


def bench_attack(
    model_name: str,
    *,
    steps: int,
    batch: int,
    reps: int,
    device: torch.device,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """minimax.PGD (m = 1) against `textbook_pgd`, interleaved in a shuffled order per
    repetition; medians, the ratios, paired ratios with intervals and an A/A control."""
    model = _model(model_name, device, **model_kwargs).eval()
    for p in model.parameters():
        p.requires_grad_(False)  # the textbook loop then needs no parameter gradients either
    x, y = _data(batch, device, seed=1)
    problem = minimax.ModuleProblem(model, perturbation=minimax.LinfBall(EPS, lower=0.0, upper=1.0))
    pgd = minimax.PGD(steps, ALPHA, restarts=1, seed=0)
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(0)

    def run_minimax() -> None:
        pgd(problem, params, (x, y))

    def run_textbook() -> None:
        textbook_pgd(model, x, y, EPS, ALPHA, steps, gen)

    def run_scored() -> None:
        textbook_pgd(model, x, y, EPS, ALPHA, steps, gen, score=True)

    # "scored again" runs the same loop as "scored": their paired ratio (an A/A control) shows
    # what this harness reads as a difference when there is none.
    order = [
        ("minimax", run_minimax),
        ("textbook", run_textbook),
        ("scored", run_scored),
        ("scored again", run_scored),
    ]
    for _, fn in order:  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name, _ in order}
    faults: dict[str, list[int]] = {name: [] for name, _ in order}  # minor page faults per call
    shuffle = random.Random(0).shuffle
    for _ in range(reps):
        shuffled = list(order)
        shuffle(shuffled)  # a fresh order each repetition: no kind always follows the same one
        for name, fn in shuffled:
            _sync(device)
            f0, t0 = _minor_faults(), time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            faults[name].append(_minor_faults() - f0)
    mm, tb = statistics.median(times["minimax"]), statistics.median(times["textbook"])
    sc = statistics.median(times["scored"])
    bare = paired_ratio(times["textbook"], times["minimax"])
    same = paired_ratio(times["scored"], times["minimax"])
    control = paired_ratio(times["scored"], times["scored again"])
    step_ours, step_textbook = step_seconds(x)
    return {
        "iteration_seconds": mm / (steps + 1),
        "step_seconds_minimax": step_ours,
        "step_seconds_textbook": step_textbook,
        "minor_faults_minimax": [
            min(faults["minimax"]),
            statistics.median(faults["minimax"]),
            max(faults["minimax"]),
        ],
        "minor_faults_textbook_scored": [
            min(faults["scored"]),
            statistics.median(faults["scored"]),
            max(faults["scored"]),
        ],
        "control_ratio": control["median"],
        "control_ratio_interval": control["interval"],
        "paired_ratio": bare["median"],
        "paired_ratio_interval": bare["interval"],
        "paired_ratio_same_work": same["median"],
        "paired_ratio_same_work_interval": same["interval"],
        "model": model_name,
        "pgd_steps": steps,
        "batch": batch,
        "reps": reps,
        "minimax_seconds": mm,
        "textbook_seconds": tb,
        "ratio": tb / mm,
        "textbook_scored_seconds": sc,
        "ratio_same_work": sc / mm,
        "minimax_min_seconds": min(times["minimax"]),
        "textbook_min_seconds": min(times["textbook"]),
        "ratio_of_minima": min(times["textbook"]) / min(times["minimax"]),
        "minimax_images_per_second": batch / mm,
        "textbook_images_per_second": batch / tb,
        "device": str(device),
    }


def paired_ratio(reference: list[float], ours: list[float]) -> dict[str, Any]:
    """Median of the per-repetition ratios reference / ours (each pair ran back to back, so a
    load change on this shared machine hits both) and a 95% distribution-free interval for that
    median: order statistics whose binomial coverage is ≥ 95% (the sign-test interval)."""
    from scipy.stats import binom

    ratios = sorted(r / o for r, o in zip(reference, ours))
    n = len(ratios)
    k = int(binom.ppf(0.025, n, 0.5))  # the smallest k with P(Bin ≤ k) ≥ 2.5%: P(Bin ≤ k−1) < 2.5%
    low, high = (ratios[k - 1], ratios[n - k]) if k >= 1 else (ratios[0], ratios[-1])
    return {"median": statistics.median(ratios), "interval": [low, high], "n": n}


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


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    if args.publish:
        publish(*args.publish)
        print(f"wrote the PGD table of {args.publish[0]} into {args.publish[1]}")
        return 0
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    batch = args.batch or (32 if args.quick else 64)
    reps = 3 if args.quick else 9
    m = args.restarts
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
    result.update(
        training=training, attack=attack, cuda_results=cuda, seconds=time.perf_counter() - started
    )

    print(
        _table(
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
    )
    print()
    print(
        _table(
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
                    "{:.3f}× [{:.3f}, {:.3f}]".format(
                        a["paired_ratio"], *a["paired_ratio_interval"]
                    ),
                    "{:.3f}× [{:.3f}, {:.3f}]".format(
                        a["paired_ratio_same_work"], *a["paired_ratio_same_work_interval"]
                    ),
                    "{:.3f}× [{:.3f}, {:.3f}]".format(
                        a["control_ratio"], *a["control_ratio_interval"]
                    ),
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
    )
    if cuda:
        print()
        for k, v in cuda["epoch_seconds_estimated"].items():
            print(f"ResNet-18 one epoch (50k images), {k}: ≈ {v / 60:.1f} min (estimated)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {args.out} in {result['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
