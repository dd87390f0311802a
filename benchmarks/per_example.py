"""Per-example DDi without per-example gradients: time and peak memory, side by side.

On the same inputs (fixed seeds: model, batch, PGD candidates):

- ``ddi-batch``: a whole outer step with batch-level DDi (the paper's rule; default gramian);
- ``ddi-batch-layerwise``: the same rule with ``gramian="layerwise"``;
- ``ddi-example``: a whole step with per-example DDi, layerwise Gramian + weighted backward;
- ``ddi-example-materialized``: the same with the m·B per-example gradients (the reference);
- ``gram``: only the per-example Gramian of the m·B rows, layerwise;
- ``gram-torchjd``: only the same Gramian with TorchJD 0.18's ``autogram.Engine``.

Times: all kinds of one configuration in one process, repetitions interleaved after a warm-up;
the fastest repetition's wall time and CPU time (all threads; steadier on a shared machine).
Peak RSS: a fresh process per kind and configuration, one run.

The Gramians of ``gram`` and ``gram-torchjd`` are compared entry by entry (max relative error).
Scaling: the small CNN with B and m varied (≥ 3 points each).

Run: ./run python benchmarks/per_example.py [--quick] [--out benchmarks/results/per_example.json]
Publish a run's tables: python benchmarks/per_example.py --publish RESULTS_JSON docs/per-example.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

import minimax as mm
from benchmarks.memory import reset_peak, status_kib
from minimax.engine.gramian import per_example_gram
from minimax_problems.models import build_model
from minimax_problems.pages import replace_block

ROOT = Path(__file__).resolve().parents[1]
STEP_KINDS = {  # (DDi's options, the engine's options)
    "ddi-batch": (dict(per_example=False), {}),
    "ddi-batch-layerwise": (dict(per_example=False), dict(gramian="layerwise")),
    "ddi-example": (dict(per_example=True), dict(gramian="layerwise")),
    "ddi-example-materialized": (
        dict(per_example=True),
        dict(gramian="materialized", memory_budget=64 * 1024**3),
    ),
}
KINDS = (*STEP_KINDS, "gram", "gram-torchjd")


def setup(model_name: str, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(model_name, activation="celu", normalization="group")
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(8 / 255, lower=0.0, upper=1.0))
    return model, problem, (x, y)


def _torchjd_gram(model, problem, batch, deltas):
    """TorchJD's autogram Gramian of the same m·B rows (rows ordered example, candidate)."""
    from torchjd.autogram import Engine  # benchmark-only extra

    from minimax.engine.gramian.hooked import candidate_rows

    engine = Engine(model, batch_dim=0)
    mask = torch.ones(deltas.shape[1], deltas.shape[0], dtype=torch.bool)

    def run() -> torch.Tensor:
        delta_rows, (x, y), _ = candidate_rows(problem, batch, deltas, mask)
        losses = problem.loss_fn(model(x + delta_rows), y) / deltas.shape[1]
        return engine.compute_gramian(losses).to(torch.float64)

    return run


def _workload(kind: str, model_name: str, batch_size: int, m: int, steps: int):
    """A callable running ``kind`` once on the fixed inputs of (model, B, m)."""
    model, problem, batch = setup(model_name, batch_size)
    inner = mm.PGD(steps, 2 / 255, restarts=m, seed=0)
    if kind in STEP_KINDS:
        rule_options, engine_options = STEP_KINDS[kind]
        sgd = torch.optim.SGD(problem.parameters().values(), lr=0.0)  # lr 0: θ stays put
        engine = mm.Engine(problem, **engine_options)
        opt = mm.MinMaxOptimizer(problem, sgd, inner, mm.DDi(**rule_options), engine=engine)
        return lambda: opt.step(batch)
    deltas = inner(problem, problem.parameters(), batch).deltas
    if kind == "gram":
        return lambda: per_example_gram(problem, problem.parameters(), batch, deltas)
    return _torchjd_gram(model, problem, batch, deltas)


def probe_memory(kind: str, model_name: str, batch_size: int, m: int, steps: int) -> dict:
    """In this (fresh) process: peak RSS (MiB) over one run of ``kind``, and its growth."""
    fn = _workload(kind, model_name, batch_size, m, steps)
    reset_peak()
    before = status_kib("VmRSS")
    fn()
    peak = status_kib("VmHWM")
    return {"peak_rss_mib": peak / 1024, "peak_growth_mib": (peak - before) / 1024}


def probe_times(
    kinds: list[str], model_name: str, batch_size: int, m: int, steps: int, reps: int
) -> dict:
    """In one process, repetitions interleaved across kinds after a warm-up: the fastest wall
    time, the median wall time and the fastest CPU time (all threads) of each kind."""
    fns, outs, errors = {}, {}, {}
    for k in kinds:  # one failing kind (e.g. out of memory) must not lose the others
        try:
            fns[k] = _workload(k, model_name, batch_size, m, steps)
            outs[k] = fns[k]()  # warm-up
        except Exception as e:  # reported in the table
            fns.pop(k, None)
            errors[k] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            outs[k] = fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    result: dict = {
        k: {"time_s": min(wall[k]), "median_s": statistics.median(wall[k]), "cpu_s": min(cpu[k])}
        for k in fns
    }
    result.update(errors)
    if "gram" in outs and "gram-torchjd" in outs:
        ref = outs["gram-torchjd"]
        result["gram_rel_diff_vs_torchjd"] = float(
            (outs["gram"] - ref).abs().max() / ref.abs().max()
        )
    return result


def _subprocess(call: str, threads: int) -> dict:
    """Run ``benchmarks.per_example.<call>`` in a fresh process; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        code = (
            f"import sys, json, torch; sys.path.insert(0, {str(ROOT)!r}); "
            f"torch.set_num_threads({threads}); import benchmarks.per_example as b; "
            f"open({f.name!r}, 'w').write(json.dumps(b.{call}))"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if r.returncode < 0:  # killed: on Linux SIGKILL here is the out-of-memory killer
            return {"error": f"killed by signal {-r.returncode} (out of memory?)"}
        if r.returncode != 0:
            return {"error": r.stderr.strip().splitlines()[-1] if r.stderr else "failed"}
        return json.loads(Path(f.name).read_text())


def run_config(model: str, b: int, m: int, kinds, args, reps: int | None = None) -> dict:
    reps = reps or args.reps
    row: dict = {"model": model, "B": b, "m": m, "reps": reps}
    times = _subprocess(
        f"probe_times({kinds!r}, {model!r}, {b}, {m}, {args.steps}, {reps})", args.threads
    )
    if "error" in times:  # the process died (e.g. killed for memory): one process per kind
        times = {}
        for kind in kinds:
            one = _subprocess(
                f"probe_times({[kind]!r}, {model!r}, {b}, {m}, {args.steps}, {reps})", args.threads
            )
            times[kind] = one.get(kind, one)
    row["gram_rel_diff_vs_torchjd"] = times.pop("gram_rel_diff_vs_torchjd", None)
    for kind in kinds:
        row[kind] = dict(times.get(kind, {}))
        if not args.no_memory:
            row[kind].update(
                _subprocess(
                    f"probe_memory({kind!r}, {model!r}, {b}, {m}, {args.steps})", args.threads
                )
            )
        c = row[kind]
        print(
            f"  {model} B={b} m={m} {kind}: "
            + (
                c.get("error")
                or f"{c['time_s']:.3f} s wall, {c['cpu_s']:.3f} s CPU, "
                f"peak RSS {c.get('peak_rss_mib', float('nan')):.0f} MiB"
            ),
            flush=True,
        )
    return row


def _ratio(row: dict, a: str, b: str, key: str) -> float | None:
    if key in row.get(a, {}) and key in row.get(b, {}):
        return row[a][key] / row[b][key]
    return None


def _print_table(rows: list[dict], kinds) -> None:
    print(f"{'config':<22}" + "".join(f"{k:>26}" for k in kinds))
    for r in rows:
        cells = []
        for k in kinds:
            c = r.get(k, {})
            cells.append(
                "n/a"
                if "time_s" not in c
                else f"{c['time_s']:.2f}s "
                f"{c['cpu_s']:.2f}s {c.get('peak_rss_mib', float('nan')):.0f}MiB"
            )
        name = f"{r['model']} B={r['B']} m={r['m']}"
        print(f"{name:<22}" + "".join(f"{c:>26}" for c in cells))


TARGETS = (  # (what, ratio key, limit): the limits checked, ResNet-18 at B = 16, m = 4
    ("per-example step / batch-level step, wall time", "time_example_vs_batch", 3.0),
    ("per-example step / batch-level step, CPU time", "cpu_example_vs_batch", 3.0),
    ("per-example step / batch-level step, peak RSS", "memory_example_vs_batch", 1.5),
    ("Gramian / TorchJD autogram, wall time", "time_gram_vs_torchjd", 1.0),
    ("Gramian / TorchJD autogram, CPU time", "cpu_gram_vs_torchjd", 1.0),
)
MARKERS = ("<!-- bench:tables -->", "<!-- /bench:tables -->")


def markers(result: dict) -> tuple[str, str]:
    """The page block a result goes to (one for every run of this benchmark)."""
    return MARKERS


def _cell(c: dict) -> str:
    if "time_s" not in c:
        return c.get("error", "not run")
    mem = f", {c['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in c else ""
    return f"{c['time_s']:.2f} s / {c['cpu_s']:.2f} s{mem}"


def markdown(result: dict) -> str:
    """The tables docs/per-example.md shows (between `MARKERS`), from a results JSON."""
    rows, scaling = result["rows"], result["scaling"]
    kinds = [k for k in KINDS if any(k in r for r in rows)]
    out = [
        f"Command: `{result['config']['command'].strip()}` (torch {result['config']['torch']},"
        f" {result['config']['threads']} threads, PGD-{result['config']['steps']}); cells: "
        "fastest wall time / its CPU time, peak RSS of a fresh process.",
        "",
    ]
    out += [
        "| configuration | " + " | ".join(f"`{k}`" for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for r in rows:
        name = f"{r['model']}, B = {r['B']}, m = {r['m']}"
        out.append(f"| {name} | " + " | ".join(_cell(r.get(k, {})) for k in kinds) + " |")
    out += [
        "",
        "| requirement (ResNet-18, B = 16, m = 4) | measured | limit | met |",
        "|---|---|---|---|",
    ]
    target_row = next((r for r in rows if (r["model"], r["B"], r["m"]) == ("resnet18", 16, 4)), {})
    for what, key, limit in TARGETS:
        v = target_row.get(key)
        met = "n/a" if v is None else ("yes" if v <= limit else "**no**")
        shown = "not measured" if v is None else f"{v:.2f}×"
        out.append(f"| {what} | {shown} | ≤ {limit:g}× | {met} |")
    for r in rows:
        if r.get("gram_rel_diff_vs_torchjd") is not None:
            out.append("")
            out.append(
                f"{r['model']}, B = {r['B']}, m = {r['m']}: the two Gramians differ by "
                f"{r['gram_rel_diff_vs_torchjd']:.1e} of their largest entry."
            )
    scale_kinds = [k for k in ("ddi-batch", "ddi-example", "gram") if any(k in r for r in scaling)]
    if scaling:
        out += [
            "",
            "Scaling, small CNN (B varied at m = 4, then m varied at B = 32):",
            "",
            "| B | m | n = mB | " + " | ".join(f"`{k}`" for k in scale_kinds) + " |",
            "|---|---|---|" + "---|" * len(scale_kinds),
        ]
        for r in scaling:
            cells = " | ".join(_cell(r.get(k, {})) for k in scale_kinds)
            out.append(f"| {r['B']} | {r['m']} | {r['B'] * r['m']} | {cells} |")
    return "\n".join(out)


def publish(results: Path, docs: Path) -> None:
    """Write the tables of ``results`` (a JSON this script wrote) into ``docs``."""
    result = json.loads(results.read_text())
    replace_block(docs, markers(result), markdown(result))


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.publish:
        publish(*args.publish)
        print(f"wrote the tables of {args.publish[0]} into {args.publish[1]}")
        return 0
    if args.quick:
        args.configs, args.scale_b, args.scale_m, args.reps = "small_cnn:8:2", "4,8", "2,3", 1
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        ap.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "steps": args.steps,
        "reps": args.reps,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "command": "python benchmarks/per_example.py " + " ".join(argv or sys.argv[1:]),
    }
    rows: list[dict] = []
    scaling: list[dict] = []

    def save() -> None:  # after every configuration, so a long run keeps what it measured
        out.write_text(json.dumps({"config": config, "rows": rows, "scaling": scaling}, indent=2))

    for spec in args.configs.split(","):
        model, b, m, *reps = spec.split(":")
        rows.append(run_config(model, int(b), int(m), kinds, args, int(reps[0]) if reps else None))
        save()
    scale_kinds = [k for k in ("ddi-batch", "ddi-example", "gram") if k in kinds]
    for b in (v for v in args.scale_b.split(",") if v):
        scaling.append(run_config("small_cnn", int(b), 4, scale_kinds, args))
        save()
    for m in (v for v in args.scale_m.split(",") if v):
        scaling.append(run_config("small_cnn", 32, int(m), scale_kinds, args))
        save()
    _add_ratios(rows + scaling)
    print(
        f"\nPer-example DDi, PGD-{args.steps}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}; wall time, CPU time (fastest rep.), "
        "peak RSS"
    )
    _print_table(rows, kinds)
    print("scaling (small CNN):")
    _print_table(scaling, scale_kinds)
    for r in rows:
        print(
            f"{r['model']} B={r['B']} m={r['m']}: example/batch wall "
            f"{r['time_example_vs_batch']}, CPU {r['cpu_example_vs_batch']}, memory "
            f"{r['memory_example_vs_batch']}, gram/torchjd wall {r['time_gram_vs_torchjd']}, "
            f"CPU {r['cpu_gram_vs_torchjd']}, "
            f"gram rel. diff vs torchjd {r.get('gram_rel_diff_vs_torchjd')}"
        )
    save()
    print(f"wrote {out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes, small CNN only")
    ap.add_argument("--steps", type=int, default=2, help="PGD steps of the inner solver")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions after a warm-up")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--configs",
        default="resnet18:16:4,small_cnn:64:10",
        help="model:B:m[:reps],... measured with every kind",
    )
    ap.add_argument("--scale-b", default="16,32,64", help="B values (small CNN, m=4)")
    ap.add_argument("--scale-m", default="2,4,8", help="m values (small CNN, B=32)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS processes")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "per_example.json"))
    ap.add_argument(
        "--publish",
        nargs=2,
        type=Path,
        metavar=("RESULTS_JSON", "DOCS_PAGE"),
        help="measure nothing: write the tables of a results JSON into a page "
        "(e.g. docs/results/per-example.json docs/per-example.md)",
    )
    return ap


def _add_ratios(rows: list[dict]) -> None:
    """Per-example against batch-level DDi (wall, CPU, memory); hooked Gramian against torchjd."""
    for r in rows:
        r["time_example_vs_batch"] = _ratio(r, "ddi-example", "ddi-batch", "time_s")
        r["cpu_example_vs_batch"] = _ratio(r, "ddi-example", "ddi-batch", "cpu_s")
        r["cpu_gram_vs_torchjd"] = _ratio(r, "gram", "gram-torchjd", "cpu_s")
        r["memory_example_vs_batch"] = _ratio(r, "ddi-example", "ddi-batch", "peak_rss_mib")
        r["time_gram_vs_torchjd"] = _ratio(r, "gram", "gram-torchjd", "time_s")


if __name__ == "__main__":
    sys.exit(main())
