"""Data parallelism on CPU (gloo): communication per step, step time on 1 and 2 processes.

Small CNN (no BatchNorm), CIFAR-shaped input, global batch B split over the ranks, PGD with
``--steps`` steps. For DDi (m restarts) and PGD-AT (Danskin, one restart):

- bytes all-reduced per step, measured by the communicator, against the formula
  DDi: 4(mP + 1) + 4·2 (one flat float32 buffer of the m gradients and the shard size, then the
  robust loss and its weight); PGD-AT: 8·2 + 4(P + 1) + 4·2 (the m = 1 batch-mean value and
  count in float64, the gradient, the robust loss);
- median step time with 1 process (global batch) and 2 processes (B/2 each), the speed-up
  t1 / t2, and the share of the step spent inside the all-reduce (rank 0);
- an ESTIMATE for GPUs: the measured bytes over published link bandwidths (ring all-reduce:
  each GPU sends and receives 2(N−1)/N × the buffer), for this model and for ResNet-18.

This machine has 2 CPU cores shared with other jobs: the two ranks compete for them, so the
CPU speed-up is a floor, not what separate GPUs give.

Run: python benchmarks/distributed.py [--quick] [--out benchmarks/results/distributed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import minimax as mm
from minimax.testing.distributed import run_ranks
from minimax_problems.models import build_model

ROOT = Path(__file__).resolve().parents[1]
# Published peak bandwidths per direction, bytes/s: NVLink 4 (H100 SXM, 900 GB/s both ways),
# NVLink 3 (A100 SXM, 600 GB/s both ways), PCIe 4.0 x16 (~32 GB/s), PCIe 5.0 x16 (~64 GB/s).
LINKS = {"NVLink4 (H100)": 450e9, "NVLink3 (A100)": 300e9, "PCIe4 x16": 32e9, "PCIe5 x16": 64e9}


def _problem(batch: int, rank: int, world: int, seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = build_model("small_cnn", activation="celu", normalization="none")
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    start, stop = mm.distributed.shard_bounds(batch, rank, world)
    problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(8 / 255))
    return model, problem, (x[start:stop], y[start:stop])


def measure(rule_name: str, m: int, batch: int, steps: int, reps: int) -> dict:
    """Median step time and per-step communication of one rule on this process's rank."""
    comm = mm.distributed.init_from_env(timeout=120)
    model, problem, data = _problem(batch, comm.rank, comm.world_size)
    rule = mm.DDi() if rule_name == "ddi" else mm.Danskin()
    engine = mm.distributed.data_parallel(problem, comm) if comm.active else None
    seed = mm.distributed.rank_seed(0, comm.rank)
    inner = mm.PGD(steps, 2 / 255, restarts=m, seed=seed)
    sgd = torch.optim.SGD(model.parameters(), lr=0.01)
    opt = mm.MinMaxOptimizer(problem, sgd, inner, rule, engine=engine)
    opt.step(data)  # warm-up
    times, comm_bytes, comm_seconds = [], [], []
    for _ in range(reps):
        b0, s0 = comm.bytes_sent, comm.seconds
        t0 = time.perf_counter()
        opt.step(data)
        times.append(time.perf_counter() - t0)
        comm_bytes.append(comm.bytes_sent - b0)
        comm_seconds.append(comm.seconds - s0)
    params = sum(p.numel() for p in model.parameters())
    return {
        "rule": rule_name,
        "m": m,
        "world": comm.world_size,
        "rank": comm.rank,
        "params": params,
        "step_s": statistics.median(times),
        "bytes": comm_bytes[-1],
        "allreduce_s": statistics.median(comm_seconds),
    }


def formula(rule: str, m: int, params: int) -> int:
    """Bytes all-reduced per step, on paper (see the module docstring)."""
    if rule == "ddi":
        return 4 * (m * params + 1) + 4 * 2
    return 8 * 2 + 4 * (params + 1) + 4 * 2


def _two_ranks(args: argparse.Namespace, rule: str, m: int) -> dict:
    argv = [sys.executable, __file__, "--worker", rule, str(m), *_common(args)]
    results = run_ranks(argv, 2, timeout=600)
    for r in results:
        if r.returncode != 0:
            raise RuntimeError(f"rank {r.rank} failed:\n{r.stderr[-2000:]}")
    return json.loads(results[0].stdout.strip().splitlines()[-1])


def _common(args: argparse.Namespace) -> list[str]:
    return ["--batch", str(args.batch), "--steps", str(args.steps), "--reps", str(args.reps)]


def estimate(bytes_per_step: int, world: int = 2) -> dict[str, float]:
    """ESTIMATE: seconds per step in the all-reduce on each link (ring, bandwidth-bound)."""
    traffic = 2 * (world - 1) / world * bytes_per_step
    return {link: traffic / bw for link, bw in LINKS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--steps", type=int, default=5, help="PGD steps (default 5)")
    parser.add_argument("--restarts", type=int, default=4, help="DDi restarts m (default 4)")
    parser.add_argument("--reps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--worker", nargs=2, metavar=("RULE", "M"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/distributed.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.worker:
        print(
            json.dumps(
                measure(args.worker[0], int(args.worker[1]), args.batch, args.steps, args.reps)
            )
        )
        return
    if args.quick:
        args.batch, args.steps, args.restarts, args.reps = 16, 2, 2, 2
    rows = [_row(args, rule, m) for rule, m in (("ddi", args.restarts), ("pgd-at", 1))]
    resnet = _resnet_estimate()
    _print(rows, resnet, args)
    result = {
        "benchmark": "distributed",
        "batch": args.batch,
        "pgd_steps": args.steps,
        "reps": args.reps,
        "quick": args.quick,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} thread/rank, 2 shared cores",
        "rows": rows,
        "resnet18_estimate": resnet,
        "note": "GPU times are estimates: bytes / published link bandwidth (ring all-reduce)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _row(args: argparse.Namespace, rule: str, m: int) -> dict[str, Any]:
    """One rule measured in one process and over two ranks, its all-reduce bytes against the
    formula, and the estimated GPU all-reduce time."""
    one = measure(rule, m, args.batch, args.steps, args.reps)
    two = _two_ranks(args, rule, m)
    expected = formula(rule, m, two["params"])
    return {
        "rule": rule,
        "m": m,
        "params": two["params"],
        "bytes": two["bytes"],
        "bytes_formula": expected,
        "bytes_match": two["bytes"] == expected,
        "step_1proc_s": one["step_s"],
        "step_2proc_s": two["step_s"],
        "speedup": one["step_s"] / two["step_s"],
        "allreduce_share": two["allreduce_s"] / two["step_s"],
        "gpu_allreduce_estimate_s": estimate(two["bytes"]),
    }


def _resnet_estimate() -> dict[str, Any]:
    """ESTIMATE: ResNet-18's all-reduce bytes per step (DDi m = 10, PGD-AT) and their times."""
    resnet_p = sum(p.numel() for p in build_model("resnet18").parameters())
    return {
        "params": resnet_p,
        "ddi_bytes_m10": formula("ddi", 10, resnet_p),
        "pgd_at_bytes": formula("pgd-at", 1, resnet_p),
        "ddi_m10_estimate_s": estimate(formula("ddi", 10, resnet_p)),
        "pgd_at_estimate_s": estimate(formula("pgd-at", 1, resnet_p)),
    }


def _print(rows: list[dict], resnet: dict, args: argparse.Namespace) -> None:
    print(f"global batch {args.batch}, PGD {args.steps} steps, CPU gloo, 2 shared cores")
    head = f"{'rule':8} {'m':>2} {'P':>9} {'bytes/step':>11} {'formula':>11} "
    print(head + f"{'1 proc s':>9} {'2 proc s':>9} {'speedup':>8} {'allreduce':>9}")
    for r in rows:
        print(
            f"{r['rule']:8} {r['m']:>2} {r['params']:>9,} {r['bytes']:>11,} "
            f"{r['bytes_formula']:>11,} {r['step_1proc_s']:>9.3f} {r['step_2proc_s']:>9.3f} "
            f"{r['speedup']:>8.2f} {r['allreduce_share']:>8.1%}"
        )
    print("ESTIMATE, all-reduce seconds per step on 2 GPUs (bytes / published bandwidth):")
    for r in rows:
        est = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in r["gpu_allreduce_estimate_s"].items())
        print(f"  {r['rule']} (this model): {est}")
    for key, label in (("ddi_m10_estimate_s", "DDi m=10"), ("pgd_at_estimate_s", "PGD-AT")):
        est = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in resnet[key].items())
        print(f"  ResNet-18 ({resnet['params']:,} params) {label}: {est}")


if __name__ == "__main__":
    main()
