"""The paper's counterexample: the single-gradient rule ascends, DDi descends.

Run: ./run python examples/counterexample.py
"""

import torch

import minimax as mm


def f(params, delta, batch):
    """f(x, y) = y(x₁² + (x₂+1)²) + (1−y)(x₁² + (x₂−1)²) − y(1−y); y = δ[:, 0] ∈ [0, 1]."""
    x, y = params["x"], delta[:, 0]
    return y * (x[0] ** 2 + (x[1] + 1) ** 2) + (1 - y) * (x[0] ** 2 + (x[1] - 1) ** 2) - y * (1 - y)


def phi(x):
    """The exact robust loss max_y f(x, y)."""
    return x[0] ** 2 + (x[1].abs() + 1) ** 2


problem = mm.FunctionProblem(
    f, {"x": torch.tensor([1.0, 0.0], dtype=torch.float64)}, mm.Box(0.0, 1.0), event_shape=(1,)
)
inner = mm.PGD(steps=10, step_size=0.1, restarts=10, seed=0)
x = problem.parameters()["x"].detach()
print(f"φ(x) = {float(phi(x)):.4f} at x = {x.tolist()}")
for rule in [mm.Danskin(certify=True), mm.DDi()]:
    d, candidates = mm.descent_direction(problem, None, None, inner, rule)
    print(f"\n{rule!r}: d = {d.vector['x'].tolist()}, certificate = {float(d.certificate):+.3f}")
    for eta in [0.05, 0.1, 0.25]:
        print(f"  φ(x − {eta}·d) = {float(phi(x - eta * d.vector['x'])):.4f}")
