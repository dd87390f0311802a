"""Benchmark of the min-norm solvers in minimax.minnorm.

Run:  .venv/bin/python benchmarks/minnorm.py [--quick] [--out benchmarks/results/minnorm.json]

Every method on five hard Gram families × m ∈ {2, 5, 10, 20, 50}, several seeded instances each:
median time per solve (one unbatched problem, warmed up, time.perf_counter), worst relative gap to
the nnls reference, worst KKT residual. Relative gap:

    gap = (f_method − f_nnls) / max(f_nnls, 1e-3 · tr(K)/m),      f = αᵀKα

i.e. relative where ‖d‖² ≥ 1e-3 × the mean squared norm of the vectors, and absolute in units of
1e-3 · tr(K)/m below that (f_nnls ≈ 0 when the hull holds the origin: float64 rounding puts f at
~1e-16 · tr(K)/m there, so a purely relative gap would measure noise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minimax.minnorm import min_norm_product_weights, min_norm_weights

FAMILIES = ("gaussian", "correlated", "rank-deficient", "origin-in-hull", "tiny-scale")
SIZES = (2, 5, 10, 20, 50)
METHODS = ("wolfe", "nnls", "frank-wolfe", "apg", "cvxpylayers")
GAP_FLOOR = 1e-3  # × tr(K)/m


def make_gram(family: str, m: int, rng: np.random.Generator) -> torch.Tensor:
    """A float64 Gram matrix [m, m] from one of the benchmark families."""
    n = m + 2
    if family in ("gaussian", "tiny-scale"):
        G = rng.standard_normal((m, n))
        if family == "tiny-scale":
            G *= 1e-6  # K ~ 1e-12
    elif family == "correlated":  # common part + orthogonal noise, pairwise cosine ≈ 0.99
        u = rng.standard_normal(n)
        Z = rng.standard_normal((m, n))
        Z -= np.outer(Z @ u / (u @ u), u)
        Z *= np.linalg.norm(u) / np.linalg.norm(Z, axis=1, keepdims=True)
        G = u + np.sqrt(1.0 / 0.99 - 1.0) * Z
    elif family == "rank-deficient":  # rank m // 3 < m
        r = max(1, m // 3)
        G = rng.standard_normal((m, r)) @ rng.standard_normal((r, n))
    elif family == "origin-in-hull":  # ± pairs
        H = rng.standard_normal(((m + 1) // 2, n))
        G = np.vstack([H, -H])[:m][rng.permutation(m)]
    else:
        raise ValueError(family)
    return torch.from_numpy(G @ G.T)


def time_solve(gram: torch.Tensor, method: str, reps: int) -> tuple[list[float], float, float]:
    """Per-call times [s] after one warm-up call, and the result's (‖d‖², kkt)."""
    res = min_norm_weights(gram, method)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        res = min_norm_weights(gram, method)
        times.append(time.perf_counter() - t0)
    return times, res.sq_norm.item(), res.kkt.item()


def run(quick: bool, seed: int) -> dict:
    n_inst = 2 if quick else 5
    n_inst_cvx = 1 if quick else 2
    reps = 3 if quick else 7
    rows = []
    pair_times: dict[int, dict[str, list[float]]] = {m: {"wolfe": [], "apg": []} for m in SIZES}
    rng = np.random.default_rng(seed)
    for family in FAMILIES:
        for m in SIZES:
            stats = {meth: {"times": [], "gaps": [], "kkts": []} for meth in METHODS}
            for inst in range(n_inst):
                K = make_gram(family, m, rng)
                f_ref = min_norm_weights(K, "nnls").sq_norm.item()
                floor = GAP_FLOOR * K.trace().item() / m
                for meth in METHODS:
                    if meth == "cvxpylayers" and inst >= n_inst_cvx:
                        continue
                    times, f, kkt = time_solve(K, meth, reps if meth != "cvxpylayers" else 2)
                    stats[meth]["times"] += times
                    stats[meth]["gaps"].append((f - f_ref) / max(f_ref, floor, 1e-300))
                    stats[meth]["kkts"].append(kkt)
                    if meth in ("wolfe", "apg"):
                        pair_times[m][meth] += times
            for meth in METHODS:
                s = stats[meth]
                rows.append(
                    {
                        "family": family,
                        "m": m,
                        "method": meth,
                        "instances": len(s["gaps"]),
                        "median_ms": 1e3 * statistics.median(s["times"]),
                        "worst_gap": max(s["gaps"]),
                        "worst_kkt": max(s["kkts"]),
                    }
                )
    return {"rows": rows, "pair_times": pair_times}


def product_bench(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for blocks, n in ((64, 200), (128, 200)):
        G = rng.standard_normal((blocks * 10, n)) + 3.0 * rng.standard_normal(n)
        K = torch.from_numpy(G @ G.T)
        min_norm_product_weights(K, [10] * blocks)
        t0 = time.perf_counter()
        res = min_norm_product_weights(K, [10] * blocks)
        out.append(
            {
                "blocks": blocks,
                "block_size": 10,
                "n": n,
                "seconds": time.perf_counter() - t0,
                "kkt": res.kkt.item(),
                "iterations": int(res.iterations.item()),
                "support": int((res.weights > 0).sum().item()),
            }
        )
    return out


def summarize(rows: list[dict]) -> list[dict]:
    """Aggregate over families: per (method, m) the median of medians and the worst gap / kkt."""
    out = []
    for meth in METHODS:
        for m in SIZES:
            sel = [r for r in rows if r["method"] == meth and r["m"] == m]
            out.append(
                {
                    "method": meth,
                    "m": m,
                    "median_ms": statistics.median(r["median_ms"] for r in sel),
                    "worst_gap": max(r["worst_gap"] for r in sel),
                    "worst_kkt": max(r["worst_kkt"] for r in sel),
                }
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer instances and repetitions")
    ap.add_argument("--out", default="benchmarks/results/minnorm.json", help="JSON output path")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    t_start = time.perf_counter()
    data = run(args.quick, args.seed)
    rows, pair = data["rows"], data["pair_times"]
    summary = summarize(rows)
    product = product_bench(args.seed)
    _print_tables(rows, summary, product)
    checks = _checks(rows, pair, product)
    print()
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name} ({detail})")
    elapsed = time.perf_counter() - t_start
    print(f"\ntotal {elapsed:.1f} s")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "benchmarks/minnorm.py" + (" --quick" if args.quick else ""),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "gap_definition": "(f_method - f_nnls) / max(f_nnls, 1e-3 * trace(K) / m), f = a^T K a",
        "timing": "median of per-call time.perf_counter() after one warm-up call, unbatched",
        "rows": rows,
        "summary": summary,
        "product": product,
        "checks": [{"name": n, "pass": ok, "detail": d} for n, ok, d in checks],
        "seconds": elapsed,
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def _print_tables(rows: list[dict], summary: list[dict], product: list[dict]) -> None:
    """Every row, the summary over the families (Markdown) and the product-of-simplices runs."""
    head = ("family", "m", "method", "median ms", "worst gap", "worst kkt")
    print("{:<15} {:>3} {:<12} {:>10} {:>11} {:>10}".format(*head))
    for r in rows:
        print(
            f"{r['family']:<15} {r['m']:>3} {r['method']:<12} {r['median_ms']:>10.3f} "
            f"{r['worst_gap']:>11.2e} {r['worst_kkt']:>10.2e}"
        )
    print("\nsummary over the five families (median of the per-family medians; worst gap / kkt)")
    print(f"| method | {' | '.join(f'm={m}' for m in SIZES)} |")
    print(f"|---|{'---|' * len(SIZES)}")
    for meth in METHODS:
        cells = [s for s in summary if s["method"] == meth]
        print(f"| {meth} (ms) | " + " | ".join(f"{s['median_ms']:.3f}" for s in cells) + " |")
        print(f"| {meth} (gap) | " + " | ".join(f"{s['worst_gap']:.1e}" for s in cells) + " |")
        print(f"| {meth} (kkt) | " + " | ".join(f"{s['worst_kkt']:.1e}" for s in cells) + " |")
    print("\nproduct of simplices (blocks of 10, n = 200, one solve after a warm-up):")
    for p in product:
        print(
            f"  {p['blocks']} blocks (m = {p['blocks'] * 10}): {p['seconds'] * 1e3:.1f} ms, "
            f"kkt {p['kkt']:.1e}, {p['iterations']} solves, support {p['support']}"
        )


def _checks(rows: list[dict], pair: dict, product: list[dict]) -> list[tuple[str, bool, str]]:
    """The targets, each (name, passed, measured detail)."""
    checks = []
    wolfe_gap = max(r["worst_gap"] for r in rows if r["method"] == "wolfe")
    checks.append(
        (
            "wolfe relative gap <= 1e-12 on every instance",
            wolfe_gap <= 1e-12,
            f"worst {wolfe_gap:.2e}",
        )
    )
    t10 = 1e3 * statistics.median(pair[10]["wolfe"])
    checks.append(("wolfe median <= 0.5 ms at m = 10", t10 <= 0.5, f"{t10:.3f} ms"))
    for m in SIZES:
        if m < 5:
            continue
        tw, ta = statistics.median(pair[m]["wolfe"]), statistics.median(pair[m]["apg"])
        checks.append(
            (f"wolfe faster than apg (100 it) at m = {m}", tw < ta, f"apg/wolfe = {ta / tw:.1f}x")
        )
    p64 = product[0]["seconds"]
    checks.append(("product 64 x 10 under 1 s", p64 < 1.0, f"{p64 * 1e3:.1f} ms"))
    return checks


if __name__ == "__main__":
    raise SystemExit(main())
