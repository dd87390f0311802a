"""minimax's attacks against torchattacks' on one model: robust accuracy and time.

A small CNN trained briefly (clean) on scikit-learn's 8×8 digits (offline). On the same test
examples, for several seeds, the robust accuracy (fraction of examples still classified correctly
at the attack's result; lower = stronger attack) of

    PGD-20 (L∞), APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (L∞ and L2)

from minimax and from torchattacks (3.5.1: PGD, APGD, APGDT, FAB with ``multi_targeted=True``,
Square) with the same budgets. Reports mean ± the 95% t-interval over the seeds, and the mean wall
and CPU time; the seeds vary the attacks' random starts only (same model, same examples; FAB-T
with one restart has none). Measured side by side in one run, interleaved.

Run: ./run python benchmarks/attacks.py [--quick] [--attacks fab-t] [--out ...attacks.json]
(needs torchattacks: pip install --no-deps torchattacks. Version 3.5.1 imports without
torchvision; for versions that import it, a stub module stands in when torchvision is missing.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

import minimax as mm

ROOT = Path(__file__).resolve().parents[1]


def import_torchattacks():
    """torchattacks, with a stub torchvision module if torchvision is missing (torchattacks only
    uses it for data sets and transforms, which this benchmark does not touch)."""
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        stub = types.ModuleType("torchvision")
        for sub in ("transforms", "datasets", "models"):
            child = types.ModuleType(f"torchvision.{sub}")
            setattr(stub, sub, child)
            sys.modules[f"torchvision.{sub}"] = child
        sys.modules["torchvision"] = stub
    import torchattacks

    return torchattacks


def digits_model(seed: int, epochs: int) -> tuple[nn.Module, Tensor, Tensor]:
    """A small CNN trained with Adam on 1,347 digits; returns it (eval mode) and the 450 test
    examples (x [N, 1, 8, 8] in [0, 1], y [N])."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(data.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = perm[:450], perm[450:]
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), x[test], y[test]


def accuracy_at(model: nn.Module, x_adv: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(-1) == y).double().mean())


def minimax_attack(name: str, norm: str, eps: float, steps: int, queries: int):
    """A function seed → (x, y) → x_adv running minimax's attack (its worst candidate)."""

    def run(model: nn.Module, x: Tensor, y: Tensor, seed: int) -> Tensor:
        budget = queries if name == "square" else steps
        return mm.attack(model, x, y, eps=eps, norm=norm, attack=name, steps=budget, seed=seed)

    return run


def torchattacks_attack(ta, name: str, norm: str, eps: float, steps: int, queries: int):
    """The same for torchattacks (model in eval mode; its seed where it takes one, else the
    global torch seed)."""
    tnorm = {"linf": "Linf", "l2": "L2"}[norm]

    def run(model: nn.Module, x: Tensor, y: Tensor, seed: int) -> Tensor:
        torch.manual_seed(seed)
        if name == "pgd":
            atk = ta.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)
        elif name == "apgd-ce":
            atk = ta.APGD(model, norm=tnorm, eps=eps, steps=steps, seed=seed, loss="ce")
        elif name == "apgd-t":
            atk = ta.APGDT(model, norm=tnorm, eps=eps, steps=steps, seed=seed, n_classes=10)
        elif name == "square":
            atk = ta.Square(model, norm=tnorm, eps=eps, n_queries=queries, seed=seed)
        elif name == "fab-t":  # AutoAttack's FAB-T, at the published 100 steps (not its 10)
            atk = ta.FAB(
                model,
                norm=tnorm,
                eps=eps,
                steps=steps,
                n_restarts=1,
                seed=seed,
                multi_targeted=True,
                n_classes=10,
            )
        else:
            raise ValueError(name)
        return atk(x, y)

    return run


def t_interval(values: list[float]) -> float:
    """Half-width of the 95% t-interval of the mean (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def measure(
    run: Callable[..., Tensor],
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    seed: int,
    eps: float,
    norm: str,
) -> tuple[float, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    x_adv = run(model, x, y, seed)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    dist = (x_adv - x).flatten(1)
    size = dist.abs().amax(1) if norm == "linf" else dist.norm(dim=1)
    if (
        bool((size > eps * (1 + 1e-4) + 1e-6).any())
        or x_adv.min() < -1e-6
        or x_adv.max() > 1 + 1e-6
    ):
        raise AssertionError(f"an attack left the threat model (max size {float(size.max())})")
    return accuracy_at(model, x_adv, y), seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few examples and seeds (a smoke run)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=100, help="APGD / APGD-T iterations")
    ap.add_argument("--pgd-steps", type=int, default=20)
    ap.add_argument("--queries", type=int, default=1000, help="Square's query budget")
    ap.add_argument("--linf", type=float, default=0.1, help="L∞ radius (pixels in [0, 1])")
    ap.add_argument("--l2", type=float, default=0.5, help="L2 radius")
    ap.add_argument("--attacks", default="", help="comma-separated subset, e.g. fab-t")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "attacks.json"))
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.examples, args.steps, args.queries = 2, 40, 20, 100
    torch.set_num_threads(1)
    ta = import_torchattacks()
    model, x, y = digits_model(seed=0, epochs=15)
    x, y = x[: args.examples], y[: args.examples]
    clean = accuracy_at(model, x, y)
    cases = [
        ("pgd", "linf", args.pgd_steps),
        ("apgd-ce", "linf", args.steps),
        ("apgd-t", "linf", args.steps),
        ("fab-t", "linf", args.steps),
        ("square", "linf", args.steps),
        ("apgd-ce", "l2", args.steps),
        ("apgd-t", "l2", args.steps),
        ("fab-t", "l2", args.steps),
        ("square", "l2", args.steps),
    ]
    if args.attacks:
        cases = [c for c in cases if c[0] in args.attacks.split(",")]
    rows = []
    for name, norm, steps in cases:
        eps = args.linf if norm == "linf" else args.l2
        impls = {
            "minimax": minimax_attack(name, norm, eps, steps, args.queries),
            "torchattacks": torchattacks_attack(ta, name, norm, eps, steps, args.queries),
        }
        acc: dict[str, list[float]] = {k: [] for k in impls}
        sec: dict[str, list[float]] = {k: [] for k in impls}
        cpu: dict[str, list[float]] = {k: [] for k in impls}
        for seed in range(args.seeds):  # interleaved: minimax, torchattacks, next seed
            for lib, run in impls.items():
                a, s, c = measure(run, model, x, y, seed, eps, norm)
                acc[lib].append(a)
                sec[lib].append(s)
                cpu[lib].append(c)
        row = {"attack": name, "norm": norm, "eps": eps}
        for lib in impls:
            row[lib] = {
                "robust_acc": statistics.mean(acc[lib]),
                "ci95": t_interval(acc[lib]),
                "per_seed": acc[lib],
                "seconds": statistics.mean(sec[lib]),
                "cpu_seconds": statistics.mean(cpu[lib]),
            }
        row["time_ratio"] = row["minimax"]["seconds"] / row["torchattacks"]["seconds"]
        rows.append(row)
        print_row(row)
    result = {
        "benchmark": "attacks",
        "command": "python benchmarks/attacks.py"
        + (" --quick" if args.quick else "")
        + (f" --attacks {args.attacks}" if args.attacks else ""),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "clean_acc": clean,
        "rows": rows,
        "torch": torch.__version__,
        "torchattacks": ta.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"clean accuracy {100 * clean:.1f}% on {len(y)} examples; wrote {out}")


def print_row(row: dict) -> None:
    if not hasattr(print_row, "header"):
        print(
            f"{'attack':9} {'norm':5} {'minimax acc %':>15} {'torchattacks acc %':>19} "
            f"{'minimax s':>10} {'ta s':>8} {'ratio':>6} {'minimax cpu':>12} {'ta cpu':>7}"
        )
        print_row.header = True  # type: ignore[attr-defined]
    m, t = row["minimax"], row["torchattacks"]
    print(
        f"{row['attack']:9} {row['norm']:5} "
        f"{100 * m['robust_acc']:8.1f} ± {100 * m['ci95']:4.1f} "
        f"{100 * t['robust_acc']:11.1f} ± {100 * t['ci95']:4.1f} "
        f"{m['seconds']:10.2f} {t['seconds']:8.2f} {row['time_ratio']:6.2f} "
        f"{m['cpu_seconds']:12.2f} {t['cpu_seconds']:7.2f}"
    )


if __name__ == "__main__":
    main()
