"""Argument checks shared by every public entry: each raises a ValueError or TypeError that names
the argument, says what it got and what it needs.

Written here rather than taken from a validation library: the checks are about tensors (dtype,
finiteness, shape) as much as numbers, and the messages must name the minimax argument.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

if TYPE_CHECKING:
    from minimax.rules import Rule

__all__ = [
    "choice",
    "device",
    "finite_tensor",
    "float_tensor",
    "generator_state",
    "integer",
    "labels",
    "logits_for",
    "model_takes",
    "pass_counts",
    "radius",
    "real_number",
    "seed",
    "step_pieces",
    "within",
]

T = TypeVar("T")


#: the largest count (steps, restarts, points, ...) an argument may ask for
MAX_COUNT = 2**31 - 1


def integer(
    name: str, value: object, *, minimum: int | None = None, maximum: int = MAX_COUNT
) -> int:
    """``value`` as an int; refuses floats with a fractional part, bools, values below
    ``minimum`` and above ``maximum`` (default 2³¹ − 1: no loop or tensor that large fits)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {out}")
    if out > maximum:
        raise ValueError(f"{name} must be an integer ≤ {maximum}, got {value!r}")
    return out


def real_number(
    name: str,
    value: object,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    finite: bool = True,
    at_most: float | None = None,
    below: float | None = None,
) -> float:
    """``value`` as a float: real, finite unless ``finite=False``, > 0 or ≥ 0 when asked,
    ≤ ``at_most`` and < ``below`` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if math.isnan(out):
        raise ValueError(f"{name} must be a number, got NaN")
    if finite and not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if positive and not out > 0:
        raise ValueError(f"{name} must be > 0, got {out}")
    if nonnegative and not out >= 0:
        raise ValueError(f"{name} must be ≥ 0, got {out}")
    if at_most is not None and out > at_most:
        raise ValueError(f"{name} must be ≤ {at_most}, got {out}")
    if below is not None and not out < below:
        interval = f"in [0, {below:g})" if nonnegative else f"< {below:g}"
        raise ValueError(f"{name} must be {interval}, got {out}")
    return out


def radius(
    name: str,
    value: object,
    *,
    norm: str,
    lower: object = 0.0,
    upper: object = 1.0,
    allow_large: bool = False,
    hint: str = "pass allow_large_eps=True if you mean it",
) -> float:
    """``value`` as a radius (finite, ≥ 0). An L∞ radius wider than ``upper − lower`` (numbers;
    every input is then reachable, usually a forgotten /255) is refused unless ``allow_large``;
    ``hint`` says how to allow it."""
    out = real_number(name, value, nonnegative=True)
    if norm == "linf" and isinstance(lower, numbers.Real) and isinstance(upper, numbers.Real):
        if out > float(upper) - float(lower) and not allow_large:
            why = f"did you mean {out:g}/255?" if float(upper) > float(lower) else "it is a point"
            raise ValueError(
                f"{name} {out:g} is wider than the input range [lower, upper] = [{lower:g}, "
                f"{upper:g}]: every input is reachable ({why}); {hint}"
            )
    return out


def choice(name: str, value: T, choices: Collection[T]) -> T:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, (str, int, float, type(None))) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def float_tensor(name: str, value: object) -> Tensor:
    """``value`` if it is a floating-point tensor; integer and complex tensors are refused with a
    hint (an integer image batch is usually a forgotten ``.float() / 255``)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {value.dtype}: convert it, e.g. "
            f"{name}.float() (and scale images to [0, 1])"
        )
    return value


_FAST = (torch.float32, torch.float64)


def _number_bounds(*bounds: object) -> bool:
    return all(b is None or isinstance(b, (int, float)) for b in bounds)


def within(name: str, value: Tensor, lower: object = None, upper: object = None) -> Tensor:
    """``value`` if every entry is finite and in [``lower``, ``upper``] (floats or tensors that
    broadcast; None: unbounded): one fused check, one host sync."""

    def like(bound: object) -> Tensor:
        return torch.as_tensor(bound, dtype=value.dtype, device=value.device)

    if _number_bounds(lower, upper) and value.numel() and value.dtype in _FAST:
        # one reduction: the extremes are finite and inside iff every entry is (NaN propagates)
        lo, hi = torch.stack(torch.aminmax(value)).tolist()
        if (
            math.isfinite(lo)
            and math.isfinite(hi)
            and (lower is None or lo >= like(lower).item())
            and (upper is None or hi <= like(upper).item())
        ):
            return value
    flags = [torch.isfinite(value).all()]
    if lower is not None:
        flags.append((value >= like(lower)).all())
    if upper is not None:
        flags.append((value <= like(upper)).all())
    if bool(torch.stack(flags).all()):
        return value
    finite_tensor(name, value)
    lo = float(value.min())
    hi = float(value.max())
    raise ValueError(
        f"{name} lies in [{lo:.4g}, {hi:.4g}], outside the declared bounds lower={lower}, "
        f"upper={upper} of the perturbation set: scale it into them (e.g. images to [0, 1]) or "
        "declare the bounds it has"
    )


def all_finite(value: Tensor) -> bool:
    """Whether every entry of ``value`` is finite: one min-max reduction for float32/64 (NaN
    propagates to the extremes; no boolean mask the size of ``value``), else ``isfinite``."""
    if value.dtype in _FAST and value.numel():
        lo, hi = torch.stack(torch.aminmax(value)).tolist()
        return math.isfinite(lo) and math.isfinite(hi)
    return bool(torch.isfinite(value).all())


def finite_tensor(name: str, value: Tensor) -> Tensor:
    """``value`` if every entry is finite (one fused check)."""
    if not all_finite(value):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} has {bad} non-finite entries (NaN or Inf)")
    return value


def seed(name: str, value: object) -> int:
    """``value`` as a seed: an integer in [−2⁶³, 2⁶⁴ − 1] (what ``torch.Generator.manual_seed``
    takes)."""
    return integer(name, value, minimum=-(2**63), maximum=2**64 - 1)


def device(name: str, value: object) -> torch.device:
    """``value`` as a ``torch.device`` that exists here (``"cuda"`` needs CUDA, ``"mps"`` MPS)."""
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a device name such as 'cpu' or 'cuda', got {value!r}")
    try:
        dev = torch.device(value)
    except RuntimeError:
        raise ValueError(
            f"{name} must be a device name such as 'cpu', 'cuda' or 'cuda:0', got {value!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={value!r} but CUDA is not available here: use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"{name}={value!r} but there are {torch.cuda.device_count()} CUDA devices here"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={value!r} but MPS is not available here: use device='cpu'")
    return dev


def labels(name: str, value: object, batch: int | None = None) -> Tensor:
    """``value`` if it is an integer class-label tensor [B] (``batch`` = B when given) with
    entries ≥ 0."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a tensor of integer class labels, got {type(value)}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(
            f"{name} must hold integer class labels, got dtype {value.dtype}: convert it, e.g. "
            f"{name}.long()"
        )
    if value.ndim != 1 or (batch is not None and value.shape[0] != batch):
        want = "[B]" if batch is None else f"[{batch}] (one per input)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(value.shape)}")
    if value.numel() and int(value.min()) < 0:
        raise ValueError(f"{name} must be class indices ≥ 0, got a label {int(value.min())}")
    return value


def logits_for(name: str, out: object, y: Tensor) -> Tensor:
    """``out`` if it can score the labels ``y`` [B]: logits [B, C] with C > max(y)."""
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != y.shape[0]:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"{name} must map x [B, ...] to logits [B, C]; it returned {got} for B = {y.shape[0]}"
        )
    top = int(y.max()) if y.numel() else -1
    if top >= out.shape[1]:
        raise ValueError(
            f"{name} returns {out.shape[1]} logits per example but the labels y go up to {top}: "
            f"it needs at least {top + 1} outputs (one per class), or the labels are wrong"
        )
    return out


def generator_state(name: str, value: object, generator: torch.Generator) -> Tensor:
    """``value`` if it is a state of a generator like ``generator`` (tried on a scratch
    generator of its device), else a ValueError."""
    if not (isinstance(value, Tensor) and value.dtype == torch.uint8 and value.ndim == 1):
        raise ValueError(f"{name} must be a generator state (a uint8 tensor [n])")
    try:
        torch.Generator(generator.device).set_state(value)
    except RuntimeError as error:
        raise ValueError(f"{name} does not fit this generator: {error}") from None
    return value


def pass_counts(name: str, value: object) -> tuple[int, int]:
    """Pass counts ``[forward, backward]`` (a list or tuple of two counts ≥ 0), checked."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"{name} must be [forward, backward], got {value!r}")
    forward, backward = (integer(name, v, minimum=0) for v in value)
    return forward, backward


def step_pieces(problem: object, inner: object, rule: object) -> Rule:
    """Check the pieces of a step: a `Problem`, an `InnerSolver`, and a rule (a `Rule`, or a
    name in `minimax.extend.RULES`, built with its defaults). Returns the rule."""
    from minimax.inner.base import InnerSolver
    from minimax.problem import Problem
    from minimax.rules import RULES, Rule

    if not isinstance(problem, Problem):
        raise TypeError(
            f"problem must be a minimax Problem (FunctionProblem, ModuleProblem, ...), got "
            f"{type(problem).__name__}"
        )
    if not isinstance(inner, InnerSolver):
        raise TypeError(
            f"inner must be an InnerSolver such as minimax.PGD(10, 2/255), got {inner!r}; "
            "build a named one with minimax.extend.INNER_SOLVERS.build(name, ...)"
        )
    if isinstance(rule, str):
        return RULES.build(rule)
    if not isinstance(rule, Rule):
        raise TypeError(
            f"rule must be a Rule such as minimax.DDi() or a name in {RULES.names()}, got "
            f"{type(rule).__name__}"
        )
    return rule


@contextlib.contextmanager
def model_takes(x: Tensor) -> Iterator[None]:
    """Around a model's forward on x: a RuntimeError or IndexError raised inside (the model cannot
    take x: a user mismatch) becomes a ValueError naming x's shape; out of memory passes."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, IndexError) as err:
        raise ValueError(
            f"model cannot take x of shape {tuple(x.shape)} ({err}); pass inputs of the shape "
            "and dtype it was built for"
        ) from None
