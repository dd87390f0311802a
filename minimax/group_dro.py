"""Online Group DRO (Sagawa, Koh, Hashimoto and Liang, ICLR 2020) as an outer rule.

The field's baseline for worst-group objectives max_g L_g(θ): instead of following the worst
group's gradient, keep group weights q ∈ Δ_k, raise the weight of the groups that do badly by an
exponentiated-gradient (mirror ascent) step on the simplex, and descend along the q-weighted
gradient:

    q_g ← q_g · exp(η · L_g),   q ← q / Σ_g q_g,   d = Σ_g q_g ∇_θ L_g.

The order (q first, then d with the new q) is that of the paper's Algorithm 1 and its reference
code. The paper's default step size is η = 0.01 (``robust_step_size`` of the authors' code, used
in their experiments). The paper's optional generalization adjustment (adding C/√n_g to L_g) is
not applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from minimax import checks
from minimax.engine import Engine
from minimax.engine.gradients import flat_norm, inner_products
from minimax.inner.base import Candidates
from minimax.nonfinite import check_state
from minimax.problem import Batch
from minimax.rules import RULES, Direction, Rule

__all__ = ["GroupDRO"]

#: η of the paper's experiments and reference code
PAPER_STEP_SIZE = 0.01


class GroupDRO(Rule):
    """Online Group DRO: exponentiated-gradient group weights q, then d = Σ_g q_g ∇L_g.

    Works on candidates that are the pure strategies of a finite max with one example (B = 1),
    as `minimax.Enumerate` returns them for a `minimax.WorstGroupProblem`: candidate i is the
    vertex e_g of its group g, and its value is L_g. A group missing from the candidates (no
    example in the batch) counts as L_g = 0 in the update, as in the reference code (its weight
    only shrinks by the normalization), and adds nothing to d.

    Args:
        step_size: η > 0, the exponentiated-gradient step on q (the paper's default: 0.01).
        certify: also compute every candidate's gradient to report max_i ⟨−d, g_i⟩.

    State: ``q`` (float64 [k], uniform at the first call); `state_dict` / `load_state_dict`
    save and restore it. `Direction.weights` are q at the candidates' groups, `extras["q"]` all
    of q after the update.
    """

    finite_only = True

    def __init__(self, step_size: float = PAPER_STEP_SIZE, *, certify: bool = False) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
            raise TypeError(f"step_size must be a number, got {step_size!r}")
        if not (step_size > 0 and step_size < float("inf")):
            raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
        self.step_size = float(step_size)
        self.certify = certify
        self.q: Tensor | None = None

    def __repr__(self) -> str:
        return f"GroupDRO(step_size={self.step_size:g})"

    def update(self, losses: Tensor) -> Tensor:
        """One exponentiated-gradient step q_g ← q_g exp(η L_g), normalised; losses [k] (0 for
        absent groups). Returns the new q (float64 [k]). Computed in log space: no overflow."""
        losses = losses.detach().to(torch.float64)
        if self.q is None:
            self.q = torch.full_like(losses, 1.0 / losses.numel())
        if self.q.shape != losses.shape:
            raise ValueError(
                f"GroupDRO holds {self.q.numel()} group weights, got {losses.numel()}"
                " group losses: use a fresh rule for another number of groups"
            )
        logits = self.q.to(losses.device).log() + self.step_size * losses
        self.q = torch.softmax(logits, dim=0)
        return self.q

    def direction(
        self, engine: Engine, params: Mapping[str, Tensor], batch: Batch, candidates: Candidates
    ) -> Direction:
        groups = _groups(candidates)
        k = int(candidates.deltas.shape[-1])
        losses = torch.zeros(k, dtype=torch.float64, device=candidates.values.device)
        losses[groups] = candidates.values[:, 0].to(torch.float64)
        q = self.update(losses)
        present = torch.zeros(k, dtype=torch.bool, device=q.device)
        present[groups] = True
        delta = torch.where(present, q, 0.0).to(candidates.deltas.dtype).reshape(1, k)
        d = engine.gradient(params, batch, delta)
        cert = None
        if self.certify:
            grads = engine.candidate_gradients(params, batch, candidates.deltas)
            cert = (-inner_products(grads, d)).max()
        return Direction(
            vector=d,
            weights=q[groups],
            norm=flat_norm(d),
            certificate=cert,
            rule=repr(self),
            extras={"q": q.clone()},
        )

    def state_dict(self) -> dict[str, Any]:
        """``{"q": [k] float64 or None, "step_size": η}``."""
        return {"q": None if self.q is None else self.q.clone(), "step_size": self.step_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore q (the step size is checked, not changed); a malformed or non-finite state is
        refused before anything changes."""
        if not isinstance(state, Mapping):
            raise TypeError(f"a GroupDRO state must be a dict, got {type(state).__name__}")
        if "q" not in state:
            raise ValueError("not a GroupDRO state_dict: missing 'q'")
        check_state(state, what="the GroupDRO state_dict")
        q = state["q"]
        if q is not None:
            if not isinstance(q, Tensor) or q.is_complex():
                raise TypeError(f"GroupDRO state 'q' must be a real tensor [k], got {type(q)}")
            q = q.to(torch.float64)
            if q.ndim != 1 or not bool((q >= 0).all()) or abs(float(q.sum()) - 1) > 1e-9:
                raise ValueError("GroupDRO state 'q' must be a probability vector [k]")
        if "step_size" in state and (
            checks.real_number("state['step_size']", state["step_size"]) != self.step_size
        ):
            raise ValueError(
                f"the state was saved with step_size={state['step_size']}, this rule has "
                f"{self.step_size}: build GroupDRO(step_size={state['step_size']})"
            )
        self.q = None if q is None else q.clone()


def _groups(candidates: Candidates) -> Tensor:
    """``[m]`` the group index of each candidate: candidates must be one-hot rows [m, 1, k]."""
    deltas = candidates.deltas
    if candidates.batch_size != 1 or deltas.ndim != 3:
        raise ValueError(
            "GroupDRO needs the candidates of a finite max with one example, deltas [m, 1, k] "
            f"(e.g. Enumerate on a WorstGroupProblem), got deltas {tuple(deltas.shape)}"
        )
    rows = deltas[:, 0]
    onehot = ((rows == 0) | (rows == 1)).all(dim=-1) & (rows.sum(dim=-1) == 1)
    if not bool(onehot.all()):
        raise ValueError("GroupDRO needs pure strategies (one-hot candidates, from Enumerate)")
    groups = rows.argmax(dim=-1)
    if len(set(groups.tolist())) != len(groups):
        raise ValueError("GroupDRO needs each group at most once among the candidates")
    return groups


RULES.add("group-dro", GroupDRO)
