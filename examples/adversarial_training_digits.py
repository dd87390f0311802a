"""Adversarial training with DDi on scikit-learn's handwritten digits, with the public API only.

Run: ./run python examples/adversarial_training_digits.py [--epochs 2]
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import minimax as mm

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--rule", choices=["danskin", "maxloss", "ddi"], default="ddi")
args = parser.parse_args()

torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # [1797, 64] in [0, 1]
y = torch.tensor(digits.target)
perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
train, test = perm[:1400], perm[1400:]

model = nn.Sequential(nn.Linear(64, 64), nn.CELU(), nn.Linear(64, 10))
problem = mm.ModuleProblem(model, perturbation=mm.LinfBall(0.1, lower=0.0, upper=1.0))
rule = {"danskin": mm.Danskin(), "maxloss": mm.MaxLoss(), "ddi": mm.DDi()}[args.rule]
opt = mm.MinMaxOptimizer(
    problem,
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
    mm.PGD(steps=5, step_size=0.03, restarts=4, seed=0),
    rule,
)

for epoch in range(args.epochs):
    for batch in train.split(64):
        report = opt.step((x[batch], y[batch]))
    print(f"epoch {epoch}: last batch robust loss {report.robust_loss:.3f}, ‖d‖ {report.norm:.3f}")

attack = mm.PGD(steps=20, step_size=0.01, restarts=1, seed=1)
model.eval()
candidates = attack(problem, problem.parameters(), (x[test], y[test]))
with torch.no_grad():
    adversarial = model(x[test] + candidates.best_deltas()).argmax(-1)
    clean = model(x[test]).argmax(-1)
print(
    f"{rule!r}: clean accuracy {(clean == y[test]).float().mean():.3f}, "
    f"PGD-20 accuracy {(adversarial == y[test]).float().mean():.3f}"
)
