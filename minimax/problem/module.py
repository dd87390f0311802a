"""`ModuleProblem`: g(θ, δ; (x, y)) = loss(model_θ(x + δ), y) through ``functional_call``."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from minimax import checks
from minimax.problem.base import Batch, Params, Problem
from minimax.sets import PerturbationSet

__all__ = ["ModuleProblem"]


def _dead() -> None:
    return None


def _same_data(given: Tensor, own: nn.Parameter) -> bool:
    """``given`` computes like the parameter ``own``: it is ``own``, or a view of all of its data
    that needs no gradient (e.g. ``own.detach()``)."""
    if given is own:
        return True
    return (
        not given.requires_grad
        and given.data_ptr() == own.data_ptr()
        and given.shape == own.shape
        and given.stride() == own.stride()
        and given.dtype == own.dtype
        and given.device == own.device
    )


def _per_example_cross_entropy(outputs: Tensor, y: Tensor) -> Tensor:
    if y.ndim == outputs.ndim - 1 and (y.is_floating_point() or y.dtype == torch.bool):
        raise TypeError(
            f"y must hold integer class labels for the cross entropy, got dtype {y.dtype}: "
            "convert it, e.g. y.long() (or pass class probabilities [B, C])"
        )
    try:
        return nn.functional.cross_entropy(outputs, y, reduction="none")
    except (IndexError, RuntimeError) as err:  # the error path only: no check on the hot path
        raise ValueError(
            f"the cross entropy cannot score the labels y {tuple(y.shape)} against the model's "
            f"outputs {tuple(outputs.shape)} ({err}): labels must be class indices in [0, C) for "
            "logits [B, C]"
        ) from None


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
        self._own_checked: tuple[tuple[tuple[str, Tensor], ...], bool] = ((), False)
        self._batch_checked: tuple[Callable[[], object], ...] = (_dead, _dead)
        self.event_ndim = -1  # set per batch (δ has the shape of x)

    def __repr__(self) -> str:
        name = type(self.model).__name__
        return f"ModuleProblem({name}, {self.perturbation!r}, batchnorm={self.batchnorm!r})"

    def with_loss(
        self,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        *,
        stacking: Literal["auto", "stack", "vmap", "loop"] | None = None,
    ) -> ModuleProblem:
        """The same model, set and BatchNorm mode with another per-example loss (e.g. an attack's
        surrogate such as `minimax.dlr_loss`); it counts its passes on this problem's counter."""
        other = ModuleProblem(
            self.model,
            loss_fn,
            self.perturbation,
            batchnorm=self.batchnorm,
            stacking=self.stacking if stacking is None else stacking,
        )
        other.passes = self.passes
        return other

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
        if x is self._batch_checked[0]() and y is self._batch_checked[1]():
            return batch[0], batch[1]  # checked at the previous call (the same tensors)
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError("batch (x, y) must hold tensors")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError("the batch is empty (B = 0): pass at least one example")
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(
                f"x has {x.shape[0]} examples but y has {y.shape[:1]}: they must match"
            )
        checks.float_tensor("x", x)
        p = next(iter(self.model.parameters()), None)
        if p is not None and (x.device != p.device or y.device != p.device):
            raise ValueError(
                f"batch is on {x.device}/{y.device} but the model is on {p.device}: "
                "move them together"
            )
        if p is not None and x.dtype != p.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the model has {p.dtype}: cast one of them")
        S = self.perturbation  # clean inputs finite and inside the set's bounds: one fused check
        checks.within("x", x, getattr(S, "lower", None), getattr(S, "upper", None))
        self._batch_checked = (weakref.ref(x), weakref.ref(y))
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
        return self._forward(params, x + delta)

    def _forward(self, params: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        """model_θ(inputs). When ``params`` are the model's own parameters (the same tensors, or
        views of their data that need no gradient, as an inner solver passes them) the model is
        called directly: the same computation without ``functional_call``'s re-parametrization
        of every parameter on every call (the hot path of PGD). Otherwise ``functional_call``
        (buffers and parameters missing from ``params`` are the model's own)."""
        if self._own_parameters(params):
            return self.model(inputs)
        return functional_call(self.model, dict(params), (inputs,))

    def _own_parameters(self, params: Mapping[str, Tensor]) -> bool:
        items = tuple(params.items())
        last, same = self._own_checked
        if len(items) == len(last) and all(
            k == k0 and v is v0 for (k, v), (k0, v0) in zip(items, last)
        ):  # the same tensors as the last call (e.g. PGD's loop): already checked
            return same
        own = dict(self.model.named_parameters())
        try:
            same = all(k in own and _same_data(v, own[k]) for k, v in params.items())
        except RuntimeError:  # a torch.func wrapper (grad, vmap over θ): it has no storage
            same = False
        self._own_checked = (items, same)
        return same

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
        with self.statistics_frozen():
            out = self._forward(params, stacked)
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
        self.passes.add(forward=1)
