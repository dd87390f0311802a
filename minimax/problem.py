"""Min-max objectives: g(θ, δ; batch) → per-example values of shape [B].

θ is a dict of tensors (torch.func style), δ has shape [B, *event] for one candidate, or
[*lead, B, *event] for several candidates evaluated at once (e.g. m restarts stacked: [m, B, ...]).

Two builders:

- `FunctionProblem` wraps a plain function ``fn(params, delta, batch) -> [B]`` (toy problems);
- `ModuleProblem` wraps an ``nn.Module`` and a per-example loss through
  `torch.func.functional_call`: g(θ, δ; (x, y)) = loss(model_θ(x + δ), y).

Every problem counts the passes it runs (`problem.passes`), in units of one pass over one batch of
B examples, so that rules can be compared at equal compute.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from minimax.sets import PerturbationSet

Params = dict[str, Tensor]
Batch = Any

__all__ = [
    "Batch",
    "FunctionProblem",
    "ModuleProblem",
    "Params",
    "PassCounter",
    "Problem",
]


@dataclass
class PassCounter:
    """Forward and backward passes, in units of one pass over a batch of B examples."""

    forward: int = 0
    backward: int = 0

    def snapshot(self) -> tuple[int, int]:
        return self.forward, self.backward


class Problem(ABC):
    """A robust objective R(θ) = mean_b max_{δ_b ∈ S} g(θ, δ_b; batch_b).

    Subclasses define `values`, `parameters` and `delta_shape`. `perturbation` is the set S and
    `event_ndim` the number of trailing dims of one example's δ.
    """

    perturbation: PerturbationSet
    event_ndim: int

    def __init__(self) -> None:
        self.passes = PassCounter()

    # -- what every problem defines ------------------------------------------------------------
    @abstractmethod
    def parameters(self) -> Params:
        """The current θ: the leaf tensors an optimizer updates (name → tensor)."""

    @abstractmethod
    def delta_shape(self, batch: Batch) -> torch.Size:
        """Shape [B, *event] of one candidate δ for this batch."""

    @abstractmethod
    def objective(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        """The single-candidate objective g(θ, δ; batch): δ [B, *event] → [B].

        Public and torch.func-transformable (``grad``, ``vmap``, ``jacrev`` may wrap it); it counts
        no passes: callers that run it directly account for their passes themselves."""

    # -- shared behaviour ----------------------------------------------------------------------
    def clean_input(self, batch: Batch) -> Tensor | None:
        """The clean input x [B, *event] that bounds on x + δ refer to (None if not applicable)."""
        return None

    def reference(self, batch: Batch) -> Tensor:
        """A tensor whose device and float dtype the candidates δ use."""
        p = next(iter(self.parameters().values()))
        return p

    def values(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """g(θ, δ; batch): deltas [*lead, B, *event] → values [*lead, B].

        Each leading index is evaluated as its own forward pass (no batch statistics are shared
        between candidates); the pass counter grows by prod(lead).
        """
        shape = self.delta_shape(batch)
        self._check_delta(deltas, shape)
        lead = deltas.shape[: deltas.ndim - len(shape)]
        self.passes.forward += math.prod(lead)
        if not lead:
            return self.objective(params, deltas, batch)
        flat = deltas.reshape(-1, *shape)
        out = self._values_stacked(params, flat, batch)
        return out.reshape(*lead, shape[0])

    def preferred_chunk(self, deltas: Tensor) -> int | None:
        """How many candidates of deltas [n, B, *event] an inner solver should evaluate per call
        (forward and backward); None: all at once."""
        return None

    def _values_stacked(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        """[n, B, *event] → [n, B]; vmap over candidates, with a loop where vmap cannot run."""
        if getattr(self, "_vmap_ok", True):
            try:
                return vmap(lambda d: self.objective(params, d, batch))(deltas)
            except (RuntimeError, NotImplementedError, ValueError):
                self._vmap_ok = False
        return torch.stack([self.objective(params, d, batch) for d in deltas])

    def _check_delta(self, deltas: Tensor, shape: torch.Size) -> None:
        if not isinstance(deltas, Tensor):
            raise TypeError(f"delta must be a tensor, got {type(deltas).__name__}")
        n = len(shape)
        if deltas.ndim < n or tuple(deltas.shape[deltas.ndim - n :]) != tuple(shape):
            raise ValueError(
                f"delta has shape {tuple(deltas.shape)}, expected "
                f"[*lead, {', '.join(map(str, shape))}]"
                " (candidates stacked in front of one example batch's δ shape)"
            )

    @contextlib.contextmanager
    def statistics_frozen(self) -> Iterator[None]:
        """Inside, forwards never update running statistics (no-op for problems without them)."""
        yield

    def update_statistics(self, batch: Batch, delta: Tensor) -> None:
        """Update running statistics from one no-grad forward at δ [B, *event] (no-op here)."""
        return None

    @property
    def has_running_statistics(self) -> bool:
        return False

    @property
    def examples_coupled(self) -> bool:
        """True when one example's value depends on the other examples' δ (e.g. train-mode
        BatchNorm statistics), so the batch objective is not a sum of per-example maxima."""
        return False


def _batch_size(batch: Batch) -> int:
    if batch is None:
        return 1
    if isinstance(batch, Tensor):
        if batch.ndim == 0:
            raise ValueError("a tensor batch needs a leading batch dimension, got a 0-dim tensor")
        return int(batch.shape[0])
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return _batch_size(batch[0])
    if isinstance(batch, Mapping):
        for v in batch.values():
            if isinstance(v, Tensor):
                return _batch_size(v)
    raise ValueError(
        "cannot infer the batch size: pass None (B = 1), a tensor [B, ...], a tuple whose first "
        "item is a tensor [B, ...], or give FunctionProblem a `batch_size` function"
    )


class FunctionProblem(Problem):
    """A problem from a plain function ``fn(params, delta, batch) -> [B]``.

    Args:
        fn: the objective g; δ has shape [B, *event_shape], the result shape [B]. It should be
            torch.func-transformable (no in-place ops on inputs, no ``.item()``); otherwise set
            ``vectorize=False`` and candidates are evaluated in a loop.
        params: initial θ, name → tensor. Tensors are used as given (made leaves that require grad).
        perturbation: the set S of δ.
        event_shape: the shape of one example's δ (default ``()``: a scalar δ per example).
        batch_size: optional ``batch -> B``; by default B is read from the batch (None means B = 1).
    """

    def __init__(
        self,
        fn: Callable[[Mapping[str, Tensor], Tensor, Batch], Tensor],
        params: Mapping[str, Tensor],
        perturbation: PerturbationSet,
        *,
        event_shape: Sequence[int] = (),
        batch_size: Callable[[Batch], int] | None = None,
        vectorize: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError("fn must be callable as fn(params, delta, batch) -> values [B]")
        if not isinstance(perturbation, PerturbationSet):
            raise TypeError(
                f"perturbation must be a minimax perturbation set (LinfBall, L2Ball, L1Ball, Box), "
                f"got {type(perturbation).__name__}"
            )
        if not params:
            raise ValueError("params must be a non-empty dict name -> tensor")
        self.fn = fn
        self._params: Params = {}
        for k, v in params.items():
            if not isinstance(v, Tensor) or not v.is_floating_point():
                raise TypeError(f"params[{k!r}] must be a floating-point tensor")
            if not v.requires_grad:
                v.requires_grad_(True)
            self._params[k] = v
        devices = {v.device for v in self._params.values()}
        if len(devices) > 1:
            raise ValueError(f"all params must be on one device, got {sorted(map(str, devices))}")
        self.perturbation = perturbation
        self.event_shape = torch.Size(event_shape)
        self.event_ndim = len(self.event_shape)
        self._batch_size = batch_size or _batch_size
        self._vmap_ok = vectorize
        self.name = name or getattr(fn, "__name__", "fn")

    def __repr__(self) -> str:
        event = tuple(self.event_shape)
        return f"FunctionProblem({self.name}, {self.perturbation!r}, event_shape={event})"

    def parameters(self) -> Params:
        return self._params

    def delta_shape(self, batch: Batch) -> torch.Size:
        b = self._batch_size(batch)
        if b < 1:
            raise ValueError("the batch is empty (B = 0): pass at least one example")
        return torch.Size((b, *self.event_shape))

    def objective(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        out = self.fn(params, delta, batch)
        if out.shape != delta.shape[:1]:
            raise ValueError(
                f"{self.name} returned shape {tuple(out.shape)}, expected per-example values "
                f"[{delta.shape[0]}] (one value per example, not a mean)"
            )
        return out


def _per_example_cross_entropy(outputs: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(outputs, y, reduction="none")


_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)
_CPU_LOOP_THRESHOLD = 4096


class ModuleProblem(Problem):
    """g(θ, δ; (x, y)) = loss_fn(model_θ(x + δ), y), per example, through ``functional_call``.

    Args:
        model: the network; its parameters are θ.
        loss_fn: ``(outputs, y) -> [B]`` per-example losses (default: cross entropy with
            ``reduction="none"``). A loss that returns a scalar is rejected with a hint.
        perturbation: the set S of δ (δ has the shape of x).
        batchnorm: how BatchNorm layers behave while candidates are searched and differentiated:
            ``"per_restart"`` (default): train-mode batch statistics, computed separately for every
            candidate's own forward; running statistics are then updated once per outer step by one
            extra no-grad forward on each example's worst candidate (see `update_statistics`).
            ``"eval"``: running statistics everywhere (the model is put in eval mode for the inner
            problem and the gradients); they are still updated once per step as above.
        stacking: how several candidates [n, B, ...] are evaluated: ``"stack"`` (one forward on
            n·B inputs; not with per-restart BatchNorm), ``"vmap"`` (torch.func over candidates),
            ``"loop"`` (one forward per candidate), or ``"auto"`` (default): a loop on CPU for
            batches of at least 4096 input entries per candidate, where it measured fastest, else
            vmap with per-restart BatchNorm and stacking otherwise. All give the same values.

    The batch is a tuple ``(x, y)`` with x [B, ...] and y [B, ...] on the model's device.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        perturbation: PerturbationSet | None = None,
        *,
        batchnorm: Literal["per_restart", "eval"] = "per_restart",
        stacking: Literal["auto", "stack", "vmap", "loop"] = "auto",
    ) -> None:
        super().__init__()
        if stacking not in ("auto", "stack", "vmap", "loop"):
            raise ValueError(
                f"stacking must be 'auto', 'stack', 'vmap' or 'loop', got {stacking!r}"
            )
        self.stacking = stacking
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if perturbation is None or not isinstance(perturbation, PerturbationSet):
            raise TypeError(
                "ModuleProblem needs a perturbation set, e.g. LinfBall(8/255, lower=0, upper=1)"
            )
        if batchnorm not in ("per_restart", "eval"):
            raise ValueError(f"batchnorm must be 'per_restart' or 'eval', got {batchnorm!r}")
        self.model = model
        self.loss_fn = loss_fn or _per_example_cross_entropy
        self.perturbation = perturbation
        self.batchnorm = batchnorm
        self._bn = [m for m in model.modules() if isinstance(m, _BN_TYPES)]
        self.event_ndim = -1  # set per batch (δ has the shape of x)

    def __repr__(self) -> str:
        name = type(self.model).__name__
        return f"ModuleProblem({name}, {self.perturbation!r}, batchnorm={self.batchnorm!r})"

    @property
    def has_running_statistics(self) -> bool:
        return any(m.track_running_stats for m in self._bn)

    @property
    def examples_coupled(self) -> bool:
        return bool(self._bn) and self.model.training and self.batchnorm == "per_restart"

    def parameters(self) -> Params:
        return {k: v for k, v in self.model.named_parameters() if v.requires_grad}

    def reference(self, batch: Batch) -> Tensor:
        return self._split(batch)[0]

    def _split(self, batch: Batch) -> tuple[Tensor, Tensor]:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError("ModuleProblem expects batch = (x, y) with x [B, ...] and y [B, ...]")
        x, y = batch
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError("batch (x, y) must hold tensors")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError("the batch is empty (B = 0): pass at least one example")
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(
                f"x has {x.shape[0]} examples but y has {y.shape[:1]}: they must match"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"x must be a floating-point tensor, got {x.dtype} (convert images to float)"
            )
        p = next(iter(self.model.parameters()), None)
        if p is not None and (x.device != p.device or y.device != p.device):
            raise ValueError(
                f"batch is on {x.device}/{y.device} but the model is on {p.device}: "
                "move them together"
            )
        if p is not None and x.dtype != p.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the model has {p.dtype}: cast one of them")
        return x, y

    def clean_input(self, batch: Batch) -> Tensor:
        return self._split(batch)[0]

    def delta_shape(self, batch: Batch) -> torch.Size:
        x, _ = self._split(batch)
        self.event_ndim = x.ndim - 1
        return x.shape

    def outputs(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        """model_θ(x + δ) for one candidate δ [B, ...] (buffers from the model)."""
        x, _ = self._split(batch)
        buffers = dict(self.model.named_buffers())
        return functional_call(self.model, ({**params, **buffers},), (x + delta,))

    def objective(self, params: Mapping[str, Tensor], delta: Tensor, batch: Batch) -> Tensor:
        _, y = self._split(batch)
        with self.statistics_frozen():
            out = self.loss_fn(self.outputs(params, delta, batch), y)
        self._check_loss(out, y.shape[0])
        return out

    def _stacking_mode(self, deltas: Tensor) -> str:
        if self.stacking != "auto":
            return self.stacking
        per_candidate = deltas[0].numel()
        if deltas.device.type == "cpu" and per_candidate >= _CPU_LOOP_THRESHOLD:
            return "loop"  # measured faster on CPU for image-sized batches (benchmarks/step.py)
        if self._bn and self.model.training and self.batchnorm == "per_restart":
            return "vmap"  # own statistics per candidate
        return "stack"

    def preferred_chunk(self, deltas: Tensor) -> int | None:
        """1 where candidates are evaluated one by one (then each one's backward follows its own
        forward, and only one candidate's activations are alive at a time)."""
        return 1 if self._stacking_mode(deltas) == "loop" else None

    def _values_stacked(self, params: Mapping[str, Tensor], deltas: Tensor, batch: Batch) -> Tensor:
        mode = self._stacking_mode(deltas)
        if mode == "loop" or deltas.shape[0] == 1:
            return torch.stack([self.objective(params, d, batch) for d in deltas])
        if mode == "vmap":
            return super()._values_stacked(params, deltas, batch)
        if self._bn and self.model.training and self.batchnorm == "per_restart":
            raise ValueError(
                "stacking='stack' would share BatchNorm statistics across candidates: use "
                "'auto', 'vmap' or 'loop', or batchnorm='eval'"
            )
        # No batch statistics: one forward over all candidates stacked along the batch.
        x, y = self._split(batch)
        n, b = deltas.shape[:2]
        stacked = (x.unsqueeze(0) + deltas).reshape(n * b, *x.shape[1:])
        ys = y.unsqueeze(0).expand(n, *y.shape).reshape(n * b, *y.shape[1:])
        buffers = dict(self.model.named_buffers())
        with self.statistics_frozen():
            out = functional_call(self.model, ({**params, **buffers},), (stacked,))
            values = self.loss_fn(out, ys)
        self._check_loss(values, n * b)
        return values.reshape(n, b)

    @staticmethod
    def _check_loss(out: Tensor, b: int) -> None:
        if out.shape != (b,):
            raise ValueError(
                f"loss_fn returned shape {tuple(out.shape)}, expected per-example losses [{b}]: "
                "use reduction='none'"
            )

    @contextlib.contextmanager
    def statistics_frozen(self) -> Iterator[None]:
        """Train-mode BatchNorm uses batch statistics but updates no running statistics inside;
        with ``batchnorm="eval"`` the model runs in eval mode inside."""
        if not self._bn:
            yield
            return
        saved = [(m, m.track_running_stats, m.training) for m in self._bn]
        try:
            for m, _, training in saved:
                if self.batchnorm == "eval":
                    m.train(False)
                elif training:
                    m.track_running_stats = False
            yield
        finally:
            for m, tracked, training in saved:
                m.track_running_stats = tracked
                m.train(training)

    def update_statistics(self, batch: Batch, delta: Tensor) -> None:
        """One no-grad train-mode forward at x + δ [B, ...] that updates BN running statistics."""
        if not self._bn or not self.model.training:
            return
        x, _ = self._split(batch)
        with torch.no_grad():
            self.model(x + delta)
        self.passes.forward += 1
