"""Cost of one outer step: DDi with m restarts against m × a one-restart Danskin (PGD-AT) step.

Small CNN, CIFAR-shaped input (B × 3 × 32 × 32), CPU. Measured side by side in one run, repetitions
interleaved, medians reported:

- ratio = time(DDi step, m restarts) / (m × time(Danskin step, 1 restart)), target ≤ 1.10;
- share of Gram + QP + combination in a DDi step, target ≤ 5%;
- per-candidate gradients: torch.func vmap against a Python loop;
- peak memory of each rule (CPU: growth of the peak RSS over its first two steps, in a fresh
  process per rule).

Run: ./run python benchmarks/step.py [--quick] [--out benchmarks/results/step.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

import minimax as mm
from benchmarks.memory import reset_peak, status_kib
from minimax_problems.models import build_model

ROOT = Path(__file__).resolve().parents[1]


STACKING = {"mode": "auto"}  # the engine's stacking (--stacking)


def setup(batch: int, seed: int = 0, stacking: str = "auto"):
    torch.manual_seed(seed)
    model = build_model("small_cnn", activation="celu", normalization="none")
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(8 / 255, lower=0.0, upper=1.0))
    STACKING["mode"] = stacking
    return model, problem, (x, y)


def make_step(
    problem, rule_name: str, m: int, steps: int, chunk: int | None = None, reuse: bool = True
):
    rule = mm.extend.RULES.build(rule_name)
    sgd = torch.optim.SGD(problem.parameters().values(), lr=0.0)  # lr 0: θ stays put
    engine = mm.Engine(problem, stacking=STACKING["mode"], reuse_scoring=reuse)
    inner = mm.PGD(steps, 2 / 255, restarts=m, seed=0, chunk=chunk)
    opt = mm.MinMaxOptimizer(problem, sgd, inner, rule, engine=engine)
    return opt


def pass_counts(problem, batch, ms: list[int], steps: int, chunk: int | None) -> list[dict]:
    """Forward and backward passes of one step (`StepReport`) for every rule in
    `minimax.extend.RULES`:
    "before", the rule runs its own forward (``Engine(reuse_scoring=False)``), and "after", it
    backpropagates through the inner solver's scoring forward where the engine keeps it."""
    rows = []
    for name in mm.extend.RULES.names():
        if mm.extend.RULES.build(name).finite_only:
            continue  # a finite inner max (Enumerate), not PGD's candidates
        for m in sorted({1, *ms}):
            counts = {}
            for label, reuse in (("before", False), ("after", True)):
                opt = make_step(problem, name, m, steps, chunk, reuse)
                report = opt.step(batch)
                counts[label] = [report.forward, report.backward]
            saved = counts["before"][0] - counts["after"][0]
            rows.append({"rule": name, "m": m, **counts, "forward_saved": saved})
    return rows


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def components(problem, batch, m: int, steps: int, reps: int) -> dict[str, float]:
    """Median seconds of the candidate-gradient (vmap, loop) and Gram/QP/combination parts."""
    params = problem.parameters()
    cands = mm.PGD(steps, 2 / 255, restarts=m, seed=0)(problem, params, batch)
    out: dict[str, list[float]] = {"vmap": [], "loop": [], "gram": [], "qp": [], "combine": []}
    for _ in range(reps):
        out["vmap"].append(
            timed(lambda: mm.linalg.candidate_gradients(problem, params, batch, cands.deltas))
        )
        out["loop"].append(
            timed(
                lambda: mm.linalg.candidate_gradients(
                    problem, params, batch, cands.deltas, mode="loop"
                )
            )
        )
        grads = mm.linalg.candidate_gradients(problem, params, batch, cands.deltas)
        t0 = time.perf_counter()
        k = mm.linalg.gram(grads)
        t1 = time.perf_counter()
        res = mm.min_norm_weights(k)
        t2 = time.perf_counter()
        mm.linalg.combine(grads, res.weights)
        t3 = time.perf_counter()
        out["gram"].append(t1 - t0)
        out["qp"].append(t2 - t1)
        out["combine"].append(t3 - t2)
    return {k: statistics.median(v) for k, v in out.items()}


def peak_memory_probe(rule: str, m: int, batch: int, steps: int) -> float:
    """In this process: peak RSS growth (MiB) over the first 2 steps of ``rule`` after setup
    (Linux: the high-water mark is reset through /proc/self/clear_refs)."""
    _, problem, b = setup(batch)
    opt = make_step(problem, rule, m, steps)
    reset_peak()
    before = status_kib("VmRSS")
    opt.step(b)
    opt.step(b)
    return (status_kib("VmHWM") - before) / 1024


def peak_memory(rule: str, m: int, batch: int, steps: int) -> float | None:
    """Peak RSS growth (MiB) of ``rule``, measured in a fresh process (None where unsupported)."""
    code = (
        f"import sys, torch; sys.path.insert(0, {str(ROOT)!r}); torch.set_num_threads(1);"
        "from benchmarks.step import peak_memory_probe;"
        f"print(peak_memory_probe({rule!r}, {m}, {batch}, {steps}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(r.stdout.strip()) if r.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    ms = args.m or ([2, 4] if args.quick else [2, 4, 10])
    reps = args.reps or (3 if args.quick else 7)

    _, problem, batch = setup(args.batch, stacking=args.stacking)
    passes = pass_counts(problem, batch, ms, args.steps, args.chunk)
    print(f"passes per step (forward, backward), B={args.batch}, PGD-{args.steps}:")
    for p in passes:
        print(
            f"  {p['rule']:<12} m={p['m']:<3} before {tuple(p['before'])}  after "
            f"{tuple(p['after'])}  forward passes saved {p['forward_saved']}"
        )
    if args.passes_only:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"passes_per_step": passes}, indent=2) + "\n")
        return 0
    rows = [_cost_row(problem, batch, m, args, reps) for m in ms]
    memory: dict[str, float | None] = {}
    for m in [] if args.no_memory else ms:
        for rule in ("danskin", "maxloss", "ddi"):
            mm_ = 1 if rule == "danskin" else m
            memory[f"{rule}_m{mm_}"] = peak_memory(rule, mm_, args.batch, args.steps)

    _print_rows(rows, memory, args)
    ok_ratio = all(r["ratio_ddi_vs_m_danskin1"] <= 1.10 for r in rows)
    ok_share = all(r["share_gram_qp_combine"] <= 0.05 for r in rows)
    print(f"target DDi/(m·Danskin1) ≤ 1.10: {'PASS' if ok_ratio else 'FAIL'}")
    print(f"target Gram+QP+combination share ≤ 5%: {'PASS' if ok_share else 'FAIL'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "config": {
                    "batch": args.batch,
                    "steps": args.steps,
                    "reps": reps,
                    "threads": args.threads,
                    "chunk": args.chunk,
                    "stacking": args.stacking,
                    "model": "small_cnn(celu, no norm)",
                    "torch": torch.__version__,
                    "machine": platform.machine(),
                },
                "rows": rows,
                "passes_per_step": passes,
                "peak_memory_mib": memory,
                "targets": {"ratio_le_1.10": ok_ratio, "share_le_5pct": ok_share},
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, m ∈ {2, 4}")
    ap.add_argument(
        "--m", type=int, nargs="+", default=None, help="restart counts (default 2 4 10)"
    )
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=7, help="PGD steps of the inner solver")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=None, help="PGD restarts per stacked call")
    ap.add_argument(
        "--stacking",
        default="auto",
        choices=["auto", "stack", "vmap", "loop"],
        help="how ModuleProblem evaluates several candidates",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    ap.add_argument("--passes-only", action="store_true", help="only the pass counts per step")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "step.json"))
    return ap


def _cost_row(problem, batch, m: int, args: argparse.Namespace, reps: int) -> dict:
    """Danskin (m = 1), DDi and MaxLoss (m restarts) steps timed interleaved (medians), their
    ratios to m Danskin steps, and DDi's Gram + QP + combination share."""
    danskin = make_step(problem, "danskin", 1, args.steps)
    ddi = make_step(problem, "ddi", m, args.steps, args.chunk)
    maxloss = make_step(problem, "maxloss", m, args.steps, args.chunk)
    for opt in (danskin, ddi, maxloss):  # warm-up
        opt.step(batch)
    times: dict[str, list[float]] = {"danskin1": [], "ddi": [], "maxloss": []}
    for _ in range(reps):  # interleaved
        for key, opt in (("danskin1", danskin), ("ddi", ddi), ("maxloss", maxloss)):
            times[key].append(timed(functools.partial(opt.step, batch)))
    med = {k: statistics.median(v) for k, v in times.items()}
    parts = components(problem, batch, m, args.steps, max(3, reps // 2))
    overhead = parts["gram"] + parts["qp"] + parts["combine"]
    return {
        "m": m,
        "danskin1_s": med["danskin1"],
        "ddi_s": med["ddi"],
        "maxloss_s": med["maxloss"],
        "ratio_ddi_vs_m_danskin1": med["ddi"] / (m * med["danskin1"]),
        "ratio_maxloss_vs_m_danskin1": med["maxloss"] / (m * med["danskin1"]),
        "gram_qp_combine_s": overhead,
        "share_gram_qp_combine": overhead / med["ddi"],
        "grad_vmap_s": parts["vmap"],
        "grad_loop_s": parts["loop"],
        "vmap_speedup": parts["loop"] / parts["vmap"],
    }


def _print_rows(rows: list[dict], memory: dict, args: argparse.Namespace) -> None:
    """The cost table and the peak memory of each rule."""
    print(
        f"DDi step cost, small CNN, B={args.batch}, 3×32×32, PGD-{args.steps}, "
        f"{args.threads} thread(s), {platform.processor() or platform.machine()}"
    )
    head = (
        f"{'m':>3} {'Danskin m=1':>12} {'DDi':>9} {'DDi/(m·D1)':>11} {'MaxLoss/(m·D1)':>15} "
        f"{'Gram+QP+comb':>13} {'share':>7} {'grad vmap':>10} {'grad loop':>10} {'vmap×':>6}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['m']:>3} {r['danskin1_s'] * 1e3:>10.1f}ms {r['ddi_s'] * 1e3:>7.1f}ms "
            f"{r['ratio_ddi_vs_m_danskin1']:>11.3f} {r['ratio_maxloss_vs_m_danskin1']:>15.3f} "
            f"{r['gram_qp_combine_s'] * 1e3:>11.2f}ms {r['share_gram_qp_combine'] * 100:>6.2f}% "
            f"{r['grad_vmap_s'] * 1e3:>8.1f}ms {r['grad_loop_s'] * 1e3:>8.1f}ms "
            f"{r['vmap_speedup']:>6.2f}"
        )
    print(
        "peak memory over the first two steps (MiB, peak RSS growth, fresh process per rule): "
        + ", ".join(f"{k} {v:.1f}" if v is not None else f"{k} n/a" for k, v in memory.items())
    )


if __name__ == "__main__":
    sys.exit(main())
