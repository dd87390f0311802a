"""`ModuleProblem`: g(θ, δ; (x, y)) = loss(model_θ(x + δ), y) through ``functional_call``."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
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
            extra no-grad forward on each example's worst candidate (`Engine.update_statistics`).
            ``"eval"``: running statistics everywhere (the model is put in eval mode for the inner
            problem and the gradients); they are still updated once per step as above.

    The batch is a tuple ``(x, y)`` with x [B, ...] and y [B, ...] on the model's device.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        perturbation: PerturbationSet | None = None,
        *,
        batchnorm: Literal["per_restart", "eval"] = "per_restart",
    ) -> None:
        super().__init__()
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
        self.batchnorm_layers = [m for m in model.modules() if isinstance(m, _BN_TYPES)]
        self._own_checked: tuple[tuple[tuple[str, Tensor], ...], bool] = ((), False)
        self._batch_checked: tuple[Callable[[], object], ...] = (_dead, _dead)
        self.event_ndim = -1  # set per batch (δ has the shape of x)

    def __repr__(self) -> str:
        name = type(self.model).__name__
        return f"ModuleProblem({name}, {self.perturbation!r}, batchnorm={self.batchnorm!r})"

    @property
    def has_running_statistics(self) -> bool:
        return any(m.track_running_stats for m in self.batchnorm_layers)

    @property
    def examples_coupled(self) -> bool:
        return (
            bool(self.batchnorm_layers) and self.model.training and self.batchnorm == "per_restart"
        )

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

    def network(self, params: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        """model_θ(inputs), e.g. the class logits [N, C] of inputs [N, ...]. When ``params`` are the
        model's own parameters (the same tensors, or views of their data that need no gradient,
        as an inner solver passes them) the model is called directly: the same computation
        without ``functional_call``'s re-parametrization of every parameter on every call (the
        hot path of PGD). Otherwise ``functional_call`` (buffers and parameters missing from
        ``params`` are the model's own). Runs the model as it is: the engine sets BatchNorm's mode
        (`minimax.engine`)."""
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
        """loss_fn(model_θ(x + δ), y) for one candidate δ [B, ...] → [B]."""
        x, y = self._split(batch)
        out = self.loss_fn(self.network(params, x + delta), y)
        self.check_loss(out, y.shape[0])
        return out

    def objective_at(
        self, params: Mapping[str, Tensor], batch: Batch
    ) -> Callable[[Tensor], Tensor]:
        """`objective` with the batch and θ checked once: PGD's loop calls the model directly."""
        cls = type(self)
        if cls.objective is not ModuleProblem.objective or cls.network is not ModuleProblem.network:
            return super().objective_at(params, batch)  # a subclass's own objective or network
        x, y = self._split(batch)
        if self._own_parameters(params):
            net: Callable[[Tensor], Tensor] = self.model
        else:
            given = dict(params)
            net = lambda z: functional_call(self.model, given, (z,))  # noqa: E731
        loss_fn, b = self.loss_fn, y.shape[0]

        def g(delta: Tensor) -> Tensor:
            out = loss_fn(net(x + delta), y)
            if out.shape != (b,):
                self.check_loss(out, b)
            return out

        return g

    @staticmethod
    def check_loss(out: Tensor, b: int) -> None:
        if out.shape != (b,):
            raise ValueError(
                f"loss_fn returned shape {tuple(out.shape)}, expected per-example losses [{b}]: "
                "use reduction='none'"
            )
