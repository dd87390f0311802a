"""minimax's attacks against torchattacks' on small digits classifiers: robust accuracy, time,
passes and throughput, and where the time goes.

Two models trained briefly (clean) on scikit-learn's 8×8 digits (offline): a small CNN and an MLP.
On the same 200 test examples, for several seeds (the attacks' random starts), the robust accuracy
(fraction still classified correctly at the attack's result; lower = stronger) and the CPU and
wall time of

- ``standard``: ``minimax.evaluate(attacks="standard")`` (APGD-CE, APGD-T, FAB-T, Square) with
  the published budgets, with ``early_stop=True``, and with torchattacks' budgets, against
  torchattacks 3.5.1 ``AutoAttack(norm="Linf", version="standard")`` (`BUDGETS` states both);
- single attacks at equal budgets: PGD-20 (each seed's time the mean of ``--pgd-repeats`` runs
  back to back, after one untimed), Square (1000 queries), FAB-T (L∞ and L2, ``--steps`` × 9
  targets), and on request APGD-CE, APGD-T and other L2 versions (``--attacks``).

A single attack's time includes the one forward that finds its robust accuracy at the returned
inputs (both libraries; ``evaluate`` counts its own). Reports mean ± the 95% t-interval over the
seeds, the per-seed CPU-time ratio minimax/torchattacks (mean ± interval), forward passes (model
calls, and those with a gradient) counted by a hook on the model for both libraries, and
examples per second. Measured side by side in one run, interleaved, one thread. ``--profile``
adds the top functions (cProfile) of the first seed's runs; ``--publish`` writes the tables.

Run: ./run python benchmarks/attacks.py [--quick] [--attacks standard,pgd,square] [--profile]
(torchattacks 3.5.1 imports without torchvision; for others a stub module stands in for it.)
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import platform
import pstats
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

import minimax as mm
from benchmarks.attacks_report import compare, print_row
from benchmarks.digits_models import accuracy_at, digits_model
from minimax.extend import APGDTargeted, FABTargeted, InnerSolver

Run = Callable[..., tuple[Any, Any]]  # (model, x, y, seed) -> (x_adv or None, Evaluation or None)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ATTACKS = "standard,pgd,square,fab-t,fab-t:l2"


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


def ta_budget_suite(seed: int) -> dict[str, InnerSolver]:
    """minimax's standard suite at torchattacks' AutoAttack budgets (see `BUDGETS`)."""
    return {
        "apgd-ce": mm.APGD(10, seed=seed),
        "apgd-t": APGDTargeted(10, targets=9, seed=seed),
        "fab-t": FABTargeted(10, targets=9, seed=seed),
        "square": mm.Square(5000, p_init=0.8, seed=seed),
    }


def minimax_runs(case: str, norm: str, eps: float, steps: int, queries: int) -> dict[str, Run]:
    """{variant: run(model, x, y, seed) -> (x_adv or None, robust flags or None)}."""
    if case == "standard":

        def suite(early: bool, ta_budgets: bool) -> Run:
            def run(model: nn.Module, x: Tensor, y: Tensor, seed: int):
                attacks = ta_budget_suite(seed) if ta_budgets else "standard"
                r = mm.evaluate(
                    model,
                    (x, y),
                    eps=eps,
                    norm=norm,
                    attacks=attacks,
                    seed=seed,
                    early_stop=early,
                )
                return None, r

            return run

        return {
            "standard": suite(False, False),
            "standard, early stop": suite(True, False),
            "standard, torchattacks' budgets": suite(False, True),
        }
    budget = queries if case == "square" else steps

    def single(model: nn.Module, x: Tensor, y: Tensor, seed: int):
        return mm.attack(
            model, x, y, eps=eps, norm=norm, attack=case, steps=budget, seed=seed
        ), None

    return {case: single}


def torchattacks_run(ta, name: str, norm: str, eps: float, steps: int, queries: int) -> Run:
    """The same for torchattacks (model in eval mode; its seed where it takes one, else the
    global torch seed)."""
    tnorm = {"linf": "Linf", "l2": "L2"}[norm]

    def run(model: nn.Module, x: Tensor, y: Tensor, seed: int):
        torch.manual_seed(seed)
        if name == "standard":
            atk = ta.AutoAttack(model, norm=tnorm, eps=eps, version="standard", seed=seed)
        elif name == "pgd":
            atk = ta.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)
        elif name == "apgd-ce":
            atk = ta.APGD(model, norm=tnorm, eps=eps, steps=steps, seed=seed, loss="ce")
        elif name == "apgd-t":
            atk = ta.APGDT(model, norm=tnorm, eps=eps, steps=steps, seed=seed, n_classes=10)
        elif name == "square":
            atk = ta.Square(model, norm=tnorm, eps=eps, n_queries=queries, seed=seed)
        elif name == "fab-t":
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
        return atk(x, y), None

    return run


class Passes:
    """Counts the model's forward calls (and those recording a gradient) and the examples they
    carried, by a forward hook: the same count for both libraries."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = self.grad_calls = self.rows = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        self.calls += 1
        self.grad_calls += int(output.requires_grad)
        self.rows += int(output.shape[0])


def measure(
    run: Run,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    seed: int,
    eps: float,
    norm: str,
    profile: bool = False,
    repeats: int = 1,
) -> dict[str, Any]:
    """One run: robust accuracy, wall and CPU seconds, passes, examples/s (and its profile);
    with ``repeats``, the means over that many identical runs back to back, after one untimed
    run (warm caches for both libraries)."""
    if repeats > 1:
        run(model, x, y, seed)
    counter = Passes(model)
    prof = cProfile.Profile() if profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if prof is not None:
        prof.enable()
    try:
        for _ in range(repeats):
            x_adv, ev = run(model, x, y, seed)
            if ev is None:  # the robust accuracy at x_adv: one forward, timed for both libraries
                acc = accuracy_at(model, x_adv, y)
    finally:
        if prof is not None:
            prof.disable()
        counter.handle.remove()
    seconds = (time.perf_counter() - t0) / repeats
    cpu = (time.process_time() - c0) / repeats
    out: dict[str, Any] = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "forward": counter.calls // repeats,
        "forward_with_grad": counter.grad_calls // repeats,
        "rows": counter.rows // repeats,
        "images_per_second": len(y) / seconds,
        "images_per_cpu_second": len(y) / cpu,
    }
    if ev is not None:
        out["robust_acc"] = ev.robust_acc
        out["per_attack"] = {
            a: {
                "cpu_seconds": ev.cpu_seconds[a],
                "seconds": ev.seconds[a],
                "passes": ev.passes[a],
                "examples": ev.attacked[a],
            }
            for a in ev.attacks
        }
    else:
        check_threat(x_adv, x, eps, norm)
        out["robust_acc"] = acc
    if prof is not None:
        out["profile"] = top_functions(prof)
    return out


def check_threat(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> None:
    dist = (x_adv - x).flatten(1)
    size = dist.abs().amax(1) if norm == "linf" else dist.norm(dim=1)
    if (
        bool((size > eps * (1 + 1e-4) + 1e-6).any())
        or x_adv.min() < -1e-6
        or x_adv.max() > 1 + 1e-6
    ):
        raise AssertionError(f"an attack left the threat model (max size {float(size.max())})")


def top_functions(prof: cProfile.Profile, k: int = 12) -> list[dict[str, Any]]:
    """The ``k`` functions with the most own time: name, calls, own and cumulative seconds."""
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:k]
    return [
        {
            "function": f"{Path(f).name}:{line}({name})",
            "calls": int(nc),
            "own_s": tt,
            "cumulative_s": ct,
        }
        for (f, line, name), (cc, nc, tt, ct, _) in rows
    ]


# long: the command line and the interleaved measurement loop over models, cases and seeds.
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few examples and seeds (a smoke run)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--models", default="cnn,mlp")
    ap.add_argument("--steps", type=int, default=100, help="APGD / APGD-T / FAB-T iterations")
    ap.add_argument("--pgd-steps", type=int, default=20)
    ap.add_argument(
        "--pgd-repeats",
        type=int,
        default=30,
        help="PGD alone takes milliseconds: each seed's time is the mean of this many runs",
    )
    ap.add_argument("--queries", type=int, default=1000, help="Square's query budget (alone)")
    ap.add_argument("--linf", type=float, default=0.1, help="L∞ radius (pixels in [0, 1])")
    ap.add_argument("--l2", type=float, default=0.5, help="L2 radius")
    ap.add_argument(
        "--attacks",
        default=DEFAULT_ATTACKS,
        help="comma-separated: standard, pgd, square, apgd-ce, apgd-t, fab-t, and "
        "name:l2 for the L2 version",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the first seed's runs")
    ap.add_argument(
        "--publish",
        nargs=2,
        type=Path,
        metavar=("JSON", "PAGE"),
        help="write the tables of JSON into PAGE (no benchmark run)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "attacks.json"))
    args = ap.parse_args()
    if args.publish:
        from benchmarks.attacks_report import publish

        publish(*args.publish)
        print(f"wrote the tables of {args.publish[0]} into {args.publish[1]}")
        return
    if args.quick:
        args.seeds, args.examples, args.steps, args.queries = 2, 40, 20, 100
    torch.set_num_threads(1)
    ta = import_torchattacks()
    rows, clean = [], {}
    for kind in args.models.split(","):
        model, x, y = digits_model(seed=0, epochs=15, kind=kind)
        x, y = x[: args.examples], y[: args.examples]
        clean[kind] = accuracy_at(model, x, y)
        for spec in args.attacks.split(","):
            case, _, norm = spec.partition(":")
            norm = norm or "linf"
            eps = args.linf if norm == "linf" else args.l2
            steps = args.pgd_steps if case == "pgd" else args.steps
            mine_runs = minimax_runs(case, norm, eps, steps, args.queries)
            theirs_run = torchattacks_run(ta, case, norm, eps, steps, args.queries)
            mine: dict[str, list] = {v: [] for v in mine_runs}
            theirs: list = []
            r = args.pgd_repeats if case == "pgd" else 1
            for seed in range(args.seeds):  # interleaved, who goes first alternating by seed
                if seed % 2 == 0:
                    theirs.append(measure(theirs_run, model, x, y, seed, eps, norm, repeats=r))
                for variant, run in mine_runs.items():
                    mine[variant].append(measure(run, model, x, y, seed, eps, norm, repeats=r))
                if seed % 2 == 1:
                    theirs.append(measure(theirs_run, model, x, y, seed, eps, norm, repeats=r))
            profiles = {}
            if args.profile:  # one more run of seed 0 under cProfile (not in the timings)
                profiles["torchattacks"] = measure(theirs_run, model, x, y, 0, eps, norm, True)
                for variant, run in mine_runs.items():
                    profiles[variant] = measure(run, model, x, y, 0, eps, norm, True)
            for variant in mine_runs:
                row = compare(case, variant, norm, eps, kind, mine[variant], theirs, steps)
                if profiles:
                    row["minimax"]["profile"] = profiles[variant]["profile"]
                    row["torchattacks"]["profile"] = profiles["torchattacks"]["profile"]
                rows.append(row)
                print_row(row)
    result = {
        "benchmark": "attacks",
        "command": "python benchmarks/attacks.py"
        + (" --quick" if args.quick else "")
        + (f" --attacks {args.attacks}" if args.attacks != DEFAULT_ATTACKS else "")
        + (" --profile" if args.profile else ""),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "publish")},
        "clean_acc": clean,
        "rows": rows,
        "torch": torch.__version__,
        "torchattacks": ta.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"clean accuracy {clean} on {args.examples} examples; wrote {out}")


if __name__ == "__main__":
    main()
