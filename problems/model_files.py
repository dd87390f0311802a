"""Reading a classifier's weights from a file, safely: a checkpoint written by ``minimax train``,
a plain ``state_dict``, or (trusted input only) a TorchScript archive.

Public API::

    resolve_model_path(path) -> Path        a run directory means its best.pt, else checkpoint.pt
    is_torchscript(path) -> bool            a zip archive holding TorchScript code
    read_model_file(path, *, torchscript=False) -> ModelFile
    check_finite(tensors, where)            ValueError naming the tensors with NaN / ±inf
    check_description(meta, config, path)   ValueError naming an odd entry of a checkpoint

Checkpoints and state dicts are read with ``torch.load(weights_only=True)``: tensors and plain
containers only, never code. A TorchScript archive holds code that runs when it is loaded, so it
is read (``torch.jit.load``) only when the caller says it trusts the file (``torchscript=True``,
the CLI's ``--torchscript``); without that, such a file is refused with a message saying so.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .files import UnreadableFileError, load_tensors
from .training import load_checkpoint
from .training.config import upgrade_saved

__all__ = [
    "ModelFile",
    "check_description",
    "check_finite",
    "is_torchscript",
    "read_model_file",
    "resolve_model_path",
]

Kind = Literal["checkpoint", "state_dict", "torchscript"]
_RUN_FILES = ("best.pt", "checkpoint.pt")


@dataclass
class ModelFile:
    """What a model file held.

    kind: ``"checkpoint"`` (written by ``minimax train``: ``meta["model"]`` describes the
        architecture), ``"state_dict"`` (tensors only: the architecture must be given) or
        ``"torchscript"`` (``module`` is the loaded model).
    state: the model's state dict (None for TorchScript).
    meta, config: the checkpoint's run description and training config ({} otherwise).
    """

    path: Path
    kind: Kind
    state: dict[str, Tensor] | None = None
    module: nn.Module | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or for a run directory its best.pt (else checkpoint.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in _RUN_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds neither best.pt nor checkpoint.pt")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    return path


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """True for a TorchScript archive: a zip file with TorchScript code (``code/``) or constants
    (``constants.pkl``), which ``torch.save`` archives never hold."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any("/code/" in n or n.endswith("/constants.pkl") for n in names)


def check_finite(tensors: Mapping[str, Tensor], where: str) -> None:
    """ValueError when a floating tensor of ``tensors`` holds NaN or ±inf (names the first)."""
    bad = [
        k
        for k, t in tensors.items()
        if isinstance(t, Tensor) and t.is_floating_point() and not bool(t.isfinite().all())
    ]
    if bad:
        listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ValueError(
            f"{where} holds non-finite weights (NaN or Inf) in {listed}: refusing to evaluate it; "
            "use an earlier checkpoint"
        )


def read_model_file(path: str | os.PathLike[str], *, torchscript: bool = False) -> ModelFile:
    """Read a model file (see the module docstring); bad content is a ValueError saying what to
    do. ``torchscript=True`` states that the file is a TorchScript archive you trust."""
    path = resolve_model_path(path)
    if torchscript:
        if not is_torchscript(path):
            raise ValueError(f"{path} is not a TorchScript archive (drop --torchscript)")
        with warnings.catch_warnings():  # torch's deprecation notice of TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
        check_finite(module.state_dict(), str(path))
        return ModelFile(path, "torchscript", module=module)
    if is_torchscript(path):
        raise ValueError(
            f"{path} is a TorchScript archive: loading one runs the code it holds. Pass "
            "--torchscript if you trust this file"
        )
    try:
        loaded = load_checkpoint(path) if path.name in _RUN_FILES else _load_weights(path)
    except UnreadableFileError as error:  # truncated, not a torch file, or code-carrying
        raise ValueError(f"cannot read checkpoint or weights file {path}: {error.reason}") from None
    meta = loaded.get("meta") if isinstance(loaded, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("model"), dict):
        state = _tensors(loaded.get("model"), path)
        check_finite(state, str(path))
        meta, config = upgrade_saved(meta, loaded.get("config") or {})
        check_description(meta, config, path)
        return ModelFile(
            path,
            "checkpoint",
            state=state,
            meta=meta,
            config=config,
            epoch=loaded.get("epoch"),
        )
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):  # common wrappers of a state dict
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    state = _tensors(loaded, path)
    check_finite(state, str(path))
    return ModelFile(path, "state_dict", state=state)


#: the entries of a checkpoint's ``meta["model"]`` (`problems.models.build_model`'s arguments)
_MODEL_INTS = ("num_classes", "in_channels", "image_size", "width")


def check_description(meta: Any, config: Any, path: Path) -> None:
    """ValueError unless a checkpoint's ``meta`` and ``config`` are what ``minimax train``
    writes, as far as evaluating it reads them (types, ranges, registered names): an odd file
    is refused with one line naming the entry, not a crash inside the model builder."""
    from .data.datasets import DATASETS
    from .models import ACTIVATIONS, MODELS, NORMALIZATIONS
    from .threats import THREATS

    def bad(entry: str, value: Any, expected: str) -> ValueError:
        return ValueError(
            f"{path} has an odd {entry} = {value!r:.80} (expected {expected}): not a checkpoint "
            "as `minimax train` writes it; pass the weights as a state_dict with --model instead"
        )

    def integer(value: Any, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value < 2**31

    if not isinstance(config, dict):
        raise bad("config", config, "a mapping")
    model = meta["model"]
    if not isinstance(model.get("name"), str) or model["name"] not in MODELS.names():
        raise bad("meta.model.name", model.get("name"), f"one of {', '.join(MODELS.names())}")
    for key, choices in (("activation", ACTIVATIONS), ("normalization", NORMALIZATIONS)):
        if key in model and model[key] not in choices:
            raise bad(f"meta.model.{key}", model[key], f"one of {', '.join(choices)}")
    for key in _MODEL_INTS:
        if key in model and not integer(model[key], 1):
            raise bad(f"meta.model.{key}", model[key], "an integer ≥ 1")
    for key in ("mean", "std"):
        value = model.get(key)
        if value is not None and not (
            isinstance(value, (list, tuple))
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        ):
            raise bad(f"meta.model.{key}", value, "a list of finite numbers")
    unknown = set(model) - {"name", "activation", "normalization", "mean", "std", *_MODEL_INTS}
    if unknown:
        raise bad("meta.model entry", sorted(unknown)[0], "a build_model argument")
    if "dataset" in meta and meta["dataset"] not in DATASETS.names():
        raise bad("meta.dataset", meta["dataset"], f"one of {', '.join(DATASETS.names())}")
    if not isinstance(meta.get("data_dir", ""), str):
        raise bad("meta.data_dir", meta["data_dir"], "a path")
    for key in ("val_split", "limit_train"):
        if meta.get(key) is not None and not integer(meta[key], 0):
            raise bad(f"meta.{key}", meta[key], "an integer ≥ 0")
    if "threat" in config and config["threat"] not in THREATS.names():
        raise bad("config.threat", config["threat"], f"one of {', '.join(THREATS.names())}")
    eps = config.get("eps", 0.0)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < math.inf:
        raise bad("config.eps", eps, "a finite number ≥ 0")
    for key, low in (("seed", -(2**63)), ("restarts", 1), ("epochs", 0)):
        if config.get(key) is not None and not (
            isinstance(config[key], int)
            and not isinstance(config[key], bool)
            and low <= config[key] < 2**63
        ):
            raise bad(f"config.{key}", config[key], f"an integer ≥ {low}")


def _load_weights(path: Path) -> Any:
    """``torch.load`` of tensors and plain containers only (no code), on CPU."""
    return load_tensors(path)


def _tensors(state: Any, path: Path) -> dict[str, Tensor]:
    """A state dict {name: tensor} (a ``module.`` prefix from DataParallel dropped)."""
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())
    ):
        raise ValueError(
            f"{path} holds no state dict (a mapping from parameter names to tensors): save one "
            "with torch.save(model.state_dict(), path)"
        )
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
