"""Reading a classifier's weights from a file, safely: a checkpoint written by ``minimax train``,
a plain ``state_dict``, or (trusted input only) a TorchScript archive.

Public API::

    resolve_model_path(path) -> Path        a run directory means its best.pt, else checkpoint.pt
    is_torchscript(path) -> bool            a zip archive holding TorchScript code
    read_model_file(path, *, torchscript=False) -> ModelFile
    check_finite(tensors, where)            ValueError naming the tensors with NaN / ±inf

Checkpoints and state dicts are read with ``torch.load(weights_only=True)``: tensors and plain
containers only, never code. A TorchScript archive holds code that runs when it is loaded, so it
is read (``torch.jit.load``) only when the caller says it trusts the file (``torchscript=True``,
the CLI's ``--torchscript``); without that, such a file is refused with a message saying so.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from problems.training import load_checkpoint

__all__ = ["ModelFile", "check_finite", "is_torchscript", "read_model_file", "resolve_model_path"]

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
    except ValueError:  # a refusal that already says why (e.g. non-finite weights)
        raise
    except Exception as error:  # not a torch file, truncated, or unsafe (code) content
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"cannot read checkpoint or weights file {path}: torch.load(weights_only=True) refused "
            f"it ({first[:160]})"
        ) from None
    if isinstance(loaded, dict) and isinstance((loaded.get("meta") or {}).get("model"), dict):
        state = _tensors(loaded.get("model"), path)
        check_finite(state, str(path))
        config = dict(loaded.get("config") or {})
        return ModelFile(
            path,
            "checkpoint",
            state=state,
            meta=dict(loaded["meta"]),
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


def _load_weights(path: Path) -> Any:
    """``torch.load`` of tensors and plain containers only (no code), on CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


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
