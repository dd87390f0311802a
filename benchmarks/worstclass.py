"""Time of one worst-class digits seed (`problems.worstclass`), quick and full settings, one
torch thread: per rule the wall and CPU seconds of its training loop and its passes, and the
whole `run_worstclass` call (data split, four trainings, test evaluation). The first call in a
process ("cold", quick settings) also pays torch's one-time warm-up; "quick" and "full" follow it.

Budget (the demo's): one full seed ≲ 10 s, one quick seed ≲ 2 s, on one CPU thread. On a
shared machine the CPU seconds are the better guide (the wall clock includes waiting).

Run: ./run python benchmarks/worstclass.py [--seed 0] [--out benchmarks/results/worstclass.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from problems import digits
from problems.worstclass import WorstClassSettings, run_worstclass

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, settings: WorstClassSettings, seed: int) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    run = run_worstclass(seed, settings)
    return {
        "mode": name,
        "wall": round(time.perf_counter() - t0, 3),
        "cpu": round(time.process_time() - c0, 3),
        "rules": {
            rule: {k: r[k] for k in ("seconds", "cpu_seconds", "steps", "forward", "backward")}
            for rule, r in run["rules"].items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "worstclass.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    digits.load()  # imports and the data file, outside the timings
    results = [
        measure("cold", WorstClassSettings.quick(), args.seed),  # first call: one-time warm-up
        measure("quick", WorstClassSettings.quick(), args.seed),
        measure("full", WorstClassSettings(), args.seed),
    ]
    print(f"{'mode':6} {'rule':10} {'wall s':>7} {'cpu s':>7} {'steps':>6} {'fwd':>5} {'bwd':>5}")
    for res in results:
        for rule, r in res["rules"].items():
            print(
                f"{res['mode']:6} {rule:10} {r['seconds']:7.2f} {r['cpu_seconds']:7.2f} "
                f"{r['steps']:6d} {r['forward']:5d} {r['backward']:5d}"
            )
        print(f"{res['mode']:6} {'(total)':10} {res['wall']:7.2f} {res['cpu']:7.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
