"""Linear algebra on parameter gradients: per-candidate and per-example gradients, Gram matrices
(float64), the per-example Gramian without per-example gradients, combinations α ↦ Σ α_i g_i,
norms, and the product-of-simplices min-norm QP with its KKT residual.

Gradients are dicts shaped like θ with leading candidate (and example) axes; Gram matrices are
float64 whatever θ's dtype (docs/minnorm.md, docs/per-example.md).
"""

from minimax.engine.gradients import (
    candidate_gradients,
    combine,
    flat_norm,
    gram,
    inner_products,
    per_example_gradients,
)
from minimax.engine.gramian import per_example_gram, weighted_gradient
from minimax.minnorm import kkt_residual, min_norm_product_weights

__all__ = [
    "candidate_gradients",
    "combine",
    "flat_norm",
    "gram",
    "inner_products",
    "kkt_residual",
    "min_norm_product_weights",
    "per_example_gradients",
    "per_example_gram",
    "weighted_gradient",
]
