"""The scoring forward's graph: kept by the engine where the step's rule differentiates the
scored candidates, so that their gradients need no forward of their own (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from minimax import checks
from minimax.nonfinite import check_candidates
from minimax.problem import Batch

__all__ = ["NEEDS", "ScoringGraph", "ScoringGraphs"]

NEEDS = ("none", "one", "all")


@dataclass(frozen=True)
class ScoringGraph:
    """Kept by the engine so that the candidates' gradients need no forward of their own.

    params: the θ leaves (requires_grad) the scoring forward used;
    values: one [B] tensor per candidate, with its own graph (a backward from one of them runs
        only that candidate's graph);
    deltas: the candidates [m, B, ...] it belongs to (matched by identity).
    """

    params: dict[str, Tensor]
    values: list[Tensor]
    deltas: Tensor


class ScoringGraphs:
    """The engine's half that decides, keeps and hands out scoring graphs (one decision)."""

    reuse_scoring: bool
    gramian_mode: str

    def __init__(self) -> None:
        self._need = "none"  # what the step's rule differentiates (set by `step`)
        self._restarts = 0
        self._scored: list[Tensor] = []  # per-candidate values with graphs, this search
        self._leaves: dict[str, Tensor] | None = None
        self._graph: ScoringGraph | None = None
        self._unscored = False  # this search's caller reads only the deltas (`begin_search`)
        self._skipped = False  # `score` ran no forward in this search (its values are NaN)
        self.last_values: Tensor | None = None  # the last values this search's ascent computed

    def values(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        raise NotImplementedError  # the engine's

    def refuse_nonfinite_values(self, values: Tensor, solver: str) -> None:
        raise NotImplementedError  # the engine's

    @contextlib.contextmanager
    def step(self, need: str, restarts: int) -> Iterator[None]:
        """One outer step whose rule differentiates ``need`` of the ``restarts`` candidates:
        ``"all"`` (every candidate's batch gradient), ``"one"`` (one of them), ``"none"``.
        Inside, scoring forwards keep their graph where the engine decides it pays."""
        self._need = checks.choice("need", need, NEEDS)
        self._restarts = restarts
        try:
            yield
        finally:
            self._need, self._graph, self._scored, self._leaves = "none", None, [], None

    def _keeps_graph(self, n: int) -> bool:
        """The one decision: keep the scoring graph of n candidates evaluated together."""
        if not self.reuse_scoring or self._need == "none":
            return False
        if self._need == "one" and self._restarts != 1:
            return False  # one gradient of m: keep no unused graphs
        if self.gramian_mode == "layerwise":
            return False  # the layerwise Gramian runs its own forward over the rows
        return n == 1  # a stacked forward's backward would cost all n candidates'

    def begin_search(self, scored: bool = True) -> None:
        """An inner solver starts a search: scoring graphs of an earlier search are dropped.
        ``scored=False``: its caller reads only the deltas, so `score` runs no forward."""
        self._scored, self._leaves, self._graph = [], None, None
        self._unscored, self._skipped, self.last_values = not scored, False, None

    def score(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """The scoring forward of final candidates deltas [n, B, *event] → values [n, B]
        (detached); its graph to θ is kept where `step` and `_keeps_graph` say so. In a search
        begun with ``scored=False`` no forward runs and the values are NaN."""
        if self._unscored:
            self._skipped = True
            return torch.full(deltas.shape[:2], torch.nan, dtype=deltas.dtype, device=deltas.device)
        if not self._keeps_graph(deltas.shape[0]):
            with torch.no_grad():
                return self.values(params, deltas, batch).detach()
        if self._leaves is None:
            self._leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        with torch.enable_grad():
            v = self.values(self._leaves, deltas, batch)
        self._scored.extend(v)
        return v.detach()

    def found(self, deltas: Tensor, values: Tensor, solver: str) -> None:
        """An inner solver returns candidates deltas [m, B, ...] with values [m, B]: refuse
        non-finite values and bind the scoring graphs to them (in an unscored search: refuse
        non-finite deltas, and non-finite values at the ascent's last iterate)."""
        skipped, self._unscored, self._skipped = self._skipped, False, False
        last, self.last_values = self.last_values, None
        if skipped:  # no values at the candidates: check them and the ascent's last values
            check_candidates(deltas, solver=solver)
            if last is not None:
                self.refuse_nonfinite_values(last, solver)
            return
        self.refuse_nonfinite_values(values, solver)
        if self._leaves is not None and len(self._scored) == values.shape[0]:
            self._graph = ScoringGraph(self._leaves, list(self._scored), deltas)
        self._scored, self._leaves = [], None

    def graph_for(self, deltas: Tensor) -> ScoringGraph | None:
        """The scoring graph of the candidates deltas [m, B, ...], if the engine kept it."""
        graph = self._graph
        return graph if graph is not None and graph.deltas is deltas else None

    def take_graph(self, deltas: Tensor) -> ScoringGraph | None:
        """`graph_for`, handed out once: a backward frees the graph, so later gradients of these
        candidates (e.g. a certificate's) run forwards of their own."""
        graph = self.graph_for(deltas)
        if graph is not None:
            self._graph = None
        return graph
