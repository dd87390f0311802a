"""Gram blocks' working precision: a float32 model's products in float32, summed in float64;
float64 products when float32 matmuls are reduced (TF32, bf16)."""

from __future__ import annotations

import torch

import minimax as mm
from minimax.engine.gramian import Plan, per_example_gram


def test_float32_models_get_float32_products_and_a_float64_sum(
    small_cnn, module_problem, random_deltas, image_batch
):
    """A float32 model's products are formed in float32 (its gradients carry float32 rounding
    anyway) and summed in float64: K stays within float32 rounding of the float64 Gramian of the
    same model, on every plan, and DDi's certificate still holds up to that rounding."""
    torch.manual_seed(0)
    model = small_cnn(8)
    x64, y = image_batch(4, 3, 8, 1)
    d64 = random_deltas(3, x64, 2)
    double = module_problem(model)  # the model in float64 (cast in place)
    exact = per_example_gram(double, double.parameters(), (x64, y), d64, None, "materialized")
    single = mm.ModuleProblem(model.float(), perturbation=mm.LinfBall(0.1))  # back to float32
    x, deltas = x64.float(), d64.float()
    scale = float(exact.abs().max())
    for plan in [Plan(), Plan("ghost"), Plan("materialized"), Plan(budget=3000)]:
        got = per_example_gram(
            single, single.parameters(), (x, y), deltas, None, "layerwise", plan=plan
        )
        assert got.dtype == torch.float64
        err = float((got - exact).abs().max()) / scale
        assert 0 < err < 1e-5, (plan, err)  # float32 rounding: not exact, and not worse
    cands = mm.PGD(2, 0.05, restarts=3, seed=0)(single, single.parameters(), (x, y))
    for per_example in (True, False):
        out = mm.DDi(per_example=per_example)(
            mm.Engine(single, gramian="layerwise"), single.parameters(), (x, y), cands
        )
        norm2 = float(out.norm) ** 2
        assert float(out.certificate) <= -norm2 + 1e-4 * max(norm2, 1e-30)


def test_reduced_float32_matmul_precision_falls_back_to_float64_products():
    """With TF32 / bf16 matmuls allowed, float32 products would lose 13+ bits: then the layer
    products are formed in float64 (and back to float32 at "highest")."""
    from minimax.engine.gramian.blocks import work_dtype

    x = torch.ones(2, 2)
    saved = torch.get_float32_matmul_precision()
    try:
        assert work_dtype(x) == torch.float32
        torch.set_float32_matmul_precision("high")
        assert work_dtype(x) == torch.float64
    finally:
        torch.set_float32_matmul_precision(saved)
    assert work_dtype(x) == torch.float32 and work_dtype(x.double()) == torch.float64
