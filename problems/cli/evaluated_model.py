"""The model ``minimax evaluate`` measures: its file read (`problems.model_files`), its
architecture built (a ``minimax train`` checkpoint names its own; a plain state_dict takes
``--model`` and the architecture flags), its weights' kinds checked and one probing forward.

Public API::

    read_model(args) -> ModelFile                          the MODEL argument, read safely
    build_evaluated_model(file, args, data) -> (model, architecture description)
    probe(model, x, num_classes, path)                     one forward of two images, checked
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..model_files import ModelFile, read_model_file
from ..models import MODELS, build_model
from .types import UsageError, model_spec

__all__ = ["build_evaluated_model", "probe", "read_model"]


def read_model(args: argparse.Namespace) -> ModelFile:
    """The model file of ``args.checkpoint``; a usage error where the file and ``--model``
    disagree (a checkpoint names its model, a state_dict needs one)."""
    try:
        file = read_model_file(args.checkpoint, torchscript=args.torchscript)
    except (OSError, ValueError, RuntimeError) as error:
        raise UsageError(str(error)) from None
    if file.kind == "checkpoint" and args.model is not None:
        raise UsageError(
            f"{file.path} was written by `minimax train` and names its model: drop --model"
        )
    if file.kind == "state_dict" and args.model is None:
        raise UsageError(
            f"{file.path} is a plain state_dict: give its architecture with --model "
            f"({', '.join(MODELS.names())}) and --activation / --normalization"
        )
    return file


def build_evaluated_model(
    file: ModelFile, args: argparse.Namespace, data: Any
) -> tuple[Any, dict[str, Any]]:
    """The model with the file's weights, and its description."""
    if file.kind == "torchscript":
        assert file.module is not None
        return file.module, {"name": "torchscript"}
    if file.kind == "checkpoint":
        spec = dict(file.meta["model"])
    else:
        spec = {**model_spec(args, data), "width": args.width}
    model = build_model(**spec)
    assert file.state is not None
    _check_dtypes(file, model.state_dict())
    try:
        model.load_state_dict(file.state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise UsageError(
            f"the weights in {file.path} do not fit {spec['name']} "
            f"({'; '.join(first[:3])[:400]}): check --model / --activation / "
            "--normalization / --width and --dataset"
        ) from None
    return model, spec


def _check_dtypes(file: ModelFile, expected: dict[str, Any]) -> None:
    """Each tensor of the file must be of the model's kind (floating, integer, complex):
    load_state_dict would cast int64 weights silently and complex ones with a warning."""
    assert file.state is not None

    def kind(t: Any) -> str:
        return "complex" if t.is_complex() else "floating" if t.is_floating_point() else "integer"

    for name, tensor in file.state.items():
        want = expected.get(name)
        if want is not None and kind(tensor) != kind(want):
            raise UsageError(
                f"{file.path}: {name} holds {kind(tensor)} values ({tensor.dtype}) where the "
                f"model has {kind(want)} ones ({want.dtype}): not weights of this model"
            )


def probe(model: Any, x: Any, num_classes: int, path: Path) -> None:
    """One forward of two examples: a model that cannot take the data set's inputs, or whose
    output is not [B, classes] scores, is a usage error (not a crash mid-evaluation)."""
    import torch

    shape = "×".join(str(n) for n in x.shape[1:])
    training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(x[:2])
    except Exception as error:  # the model's own code (TorchScript: any error it raises)
        first = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        raise UsageError(
            f"{path} cannot take this data set's images ({shape}, values in [0, 1]): "
            f"{first[:200]}; check --dataset"
        ) from None
    finally:
        model.train(training)
    if not (isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == len(x[:2])):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UsageError(f"{path} returns {got} for a batch of 2 images: expected [2, classes]")
    if out.shape[1] < num_classes or not out.is_floating_point():
        raise UsageError(
            f"{path} returns {out.shape[1]} {out.dtype} scores per image but the data set has "
            f"{num_classes} classes: check --dataset"
        )
