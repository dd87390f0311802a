"""The cost model of the layerwise per-example Gramian, evaluated for a model at given B and m.

From the shapes of one example's forward (hooks on every parameterised layer) and the memory
autograd saves per example, it applies the formulas of docs/per-example.md (the same ones
`minimax.engine.gramian.layers` uses to choose ghost or per-layer gradients) for n = m·B rows:

- passes: Gram pass 2F·n (forward + input-gradient backward), weighted pass ≤ 3F·n, against a
  batch-level DDi step's 3F·m·B·(k + 1) (PGD-k and m gradients);
- layer work: Σ_ℓ min(n² L² (D + C), n L C D ρ + n² C D) multiply-adds, in the model's dtype
  (float32 here; the partial sums add up in float64, a negligible n² share);
- memory: n·A activations (A per example), K (8n² bytes), one layer block (≤ budget);
  the materialized reference holds n·P gradients, batch-level DDi m·P.

Times on paper assume the sustained FP32 throughput given (default 19.5 TFLOP/s, an A100's
peak; real kernels reach a fraction of it).

Run: ./run python benchmarks/per_example_cost.py [--sizes 16:4,64:10,128:10]
     [--docs docs/per-example.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from minimax.engine.gramian.blocks import recompute_factor
from minimax.engine.gramian.layers import LAYER_RULES, Plan
from minimax_problems.models import build_model
from minimax_problems.pages import replace_block

ROOT = Path(__file__).resolve().parents[1]


def layer_shapes(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """For each weight layer: kind, positions L, input features D, outputs C (one example)."""
    out: list[dict] = []
    stores: list[int] = []

    def hook(module, inputs, output):
        numel = sum(p.numel() for p in module.parameters(recurse=False))
        stores.append(min(numel, inputs[0][0].numel() + output[0].numel()))  # chunked-pass store
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            d = module.in_channels // module.groups * k
            out.append(
                {
                    "kind": "Conv2d",
                    "L": output[0, 0].numel(),
                    "D": d,
                    "C": module.out_channels,
                    "groups": module.groups,
                }
            )
        elif isinstance(module, nn.Linear):
            pos = output[0].numel() // module.out_features
            out.append(
                {
                    "kind": "Linear",
                    "L": pos,
                    "D": module.in_features,
                    "C": module.out_features,
                    "groups": 1,
                }
            )
        else:
            out.append(
                {
                    "kind": type(module).__name__,
                    "numel": sum(p.numel() for p in module.parameters(recurse=False)),
                }
            )

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if type(m) in LAYER_RULES and any(True for _ in m.parameters(recurse=False))
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    for ly, st in zip(out, stores):
        ly["store"] = st
    return out


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd saves for the backward of a forward over x (each storage once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x.clone().requires_grad_(True)).sum()
    return sum(seen.values())


def saved_bytes_per_example(model: nn.Module, x: torch.Tensor) -> float:
    """Marginal bytes saved per example (parameters saved once are not counted): from the
    forwards over x [k, ...] and x [2k, ...]."""
    return (saved_bytes(model, torch.cat([x, x])) - saved_bytes(model, x)) / x.shape[0]


def model_cost(layers: list[dict], n: int, budget: int, itemsize: int = 4) -> dict:
    """Multiply-adds of the layer work, forward MACs per example, parameters."""
    work, forward, params, ghost_layers = 0.0, 0.0, 0, 0
    for ly in layers:
        if "numel" in ly:
            work += float(n) * n * ly["numel"]
            params += ly["numel"]
            continue
        pos, d, c, g = ly["L"], ly["D"], ly["C"], ly["groups"]
        ghost = float(n) ** 2 * pos**2 * (d * g + c)
        rho = recompute_factor(n, c * d, itemsize, budget)
        mat = float(n) * pos * c * d * rho + float(n) ** 2 * c * d
        ghost_layers += ghost < mat
        work += min(ghost, mat)
        forward += pos * c * d
        params += c * d
    return {
        "layer_work_mac": work,
        "forward_mac": forward,
        "params": params,
        "ghost_layers": ghost_layers,
        "weight_layers": sum("L" in ly for ly in layers),
    }


def cost_rows(
    model_name: str, sizes: list[tuple[int, int]], pgd_steps: int, fp32_tflops: float
) -> tuple[list[dict], list[dict], float]:
    """(one row per (B, m) of the cost model, the layer shapes, bytes saved per example)."""
    torch.manual_seed(0)
    model = build_model(model_name, activation="celu", normalization="group")
    x = torch.rand(2, 3, 32, 32)
    layers = layer_shapes(model, x[:1])
    act = saved_bytes_per_example(model, x)
    budget = Plan().budget
    gib = 1024**3
    rows = []
    for b, m in sizes:
        n = b * m
        c = model_cost(layers, n, budget)
        fwd = 2 * c["forward_mac"]  # flops of one example's forward; fwd + bwd ≈ 3 fwd
        passes_flop = fwd * n * (2 + 3)  # Gram pass 2F, weighted pass ≤ 3F
        batch_step_flop = 3 * fwd * b * m * (pgd_steps + 1)  # PGD-k + m gradients
        rows.append(
            {
                "B": b,
                "m": m,
                "n": n,
                "params": c["params"],
                "ghost_layers": f"{c['ghost_layers']}/{c['weight_layers']}",
                "batch_level_step_tflop": batch_step_flop / 1e12,
                "batch_level_step_on_paper_s": batch_step_flop / (fp32_tflops * 1e12),
                "passes_tflop": passes_flop / 1e12,
                "layer_work_tflop": 2 * c["layer_work_mac"] / 1e12,
                "extra_time_on_paper_s": (passes_flop + 2 * c["layer_work_mac"])
                / (fp32_tflops * 1e12),
                "activations_gib": n * act / gib,
                "gram_gib": 8 * n * n / gib,
                "block_gib": budget / gib,
                "chunked_store_gib": n * 4 * sum(ly["store"] for ly in layers) / gib,
                "materialized_gradients_gib": n * c["params"] * 4 / gib,
                "batch_level_gradients_gib": m * c["params"] * 4 / gib,
            }
        )
    return rows, layers, act


def markdown(
    rows: list[dict], pgd_steps: int, model: str, layers: int, act: float, fp32_tflops: float
) -> str:
    """The model line and the table docs/per-example.md shows (between its ``cost:table``
    markers); ``layers`` parameterised layers, ``act`` bytes saved per example."""
    header = [
        "B",
        "m",
        "n = mB",
        "ghost layers",
        f"batch-level DDi step, PGD-{pgd_steps} (TFLOP, on paper)",
        "per-example passes (TFLOP)",
        "layer rules (TFLOP)",
        "per-example extra on paper",
        "activations n·A (GiB)",
        "K (GiB)",
        "one block (GiB)",
        "materialized gradients (GiB)",
        "batch-level gradients (GiB)",
        "chunked Gram pass store (GiB, not built)",
    ]
    params = rows[0]["params"]
    lines = [
        f"{model} (GroupNorm, CELU): {layers} parameterised layers, {params / 1e6:.1f} M "
        f"parameters (P·s = {4 * params / 2**20:.1f} MiB in float32), A = {act / 2**20:.2f} "
        f"MiB saved per example; times on paper at {fp32_tflops:g} FP32 TFLOP/s.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        cells = [
            str(r["B"]),
            str(r["m"]),
            str(r["n"]),
            r["ghost_layers"],
            f"{r['batch_level_step_tflop']:.3g} ({r['batch_level_step_on_paper_s']:.2g} s)",
            f"{r['passes_tflop']:.3g}",
            f"{r['layer_work_tflop']:.3g}",
            f"{r['extra_time_on_paper_s']:.2g} s",
            f"{r['activations_gib']:.3g}",
            f"{r['gram_gib']:.2g}",
            f"{r['block_gib']:.3g}",
            f"{r['materialized_gradients_gib']:.3g}",
            f"{r['batch_level_gradients_gib']:.3g}",
            f"{r['chunked_store_gib']:.3g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


MARKERS = ("<!-- cost:table -->", "<!-- /cost:table -->")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--sizes", default="16:4,64:10,128:10", help="B:m,...")
    ap.add_argument("--pgd-steps", type=int, default=10, help="inner PGD steps (for the step)")
    ap.add_argument("--fp32-tflops", type=float, default=19.5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "per_example_cost.json"))
    ap.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="also write the table into this page's cost:table block (docs/per-example.md)",
    )
    args = ap.parse_args(argv)
    sizes = [(int(b), int(m)) for b, m in (spec.split(":") for spec in args.sizes.split(","))]
    rows, layers, act = cost_rows(args.model, sizes, args.pgd_steps, args.fp32_tflops)
    table = markdown(rows, args.pgd_steps, args.model, len(layers), act, args.fp32_tflops)
    print(table)
    if args.docs is not None:
        replace_block(args.docs, MARKERS, table)
        print(f"wrote the table into {args.docs}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "model": args.model,
                "saved_bytes_per_example": act,
                "fp32_tflops": args.fp32_tflops,
                "layers": layers,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
