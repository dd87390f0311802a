"""The CIFAR-10 on-disk format: archive and file names, checksums, and the batch readers.

Public API (images are NCHW)::

    ARCHIVES, DIRECTORIES, MD5, URLS, BASE_URL     per format ("python" or "binary")
    CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
    check_format(format) -> "python" | "binary"
    restricted_load(file) -> object                (pickle.load that builds only numpy arrays and
                                                    plain containers)
    read_python_batch(path) / read_binary_batch(path)
        -> (images uint8 [n, 3, 32, 32], labels int64 [n])
    read_classes(directory, format) -> list[str]   (the 10 class names)

Layout: ``cifar-10-batches-py/`` holds ``data_batch_1..5``, ``test_batch``, ``batches.meta``;
``cifar-10-batches-bin/`` holds ``data_batch_1.bin..5``, ``test_batch.bin``,
``batches.meta.txt``.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch

from .errors import CIFAR10Error

__all__ = [
    "ARCHIVES",
    "BASE_URL",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DIRECTORIES",
    "MAX_ARRAY_BYTES",
    "MD5",
    "META_FILES",
    "PIXELS",
    "TEST_FILES",
    "TRAIN_FILES",
    "URLS",
    "Format",
    "RestrictedUnpickler",
    "check_format",
    "read_binary_batch",
    "read_classes",
    "read_python_batch",
    "restricted_load",
]

Format = Literal["python", "binary"]

BASE_URL = "https://www.cs.toronto.edu/~kriz/"
ARCHIVES: dict[str, str] = {
    "python": "cifar-10-python.tar.gz",
    "binary": "cifar-10-binary.tar.gz",
}
URLS: dict[str, str] = {fmt: BASE_URL + name for fmt, name in ARCHIVES.items()}
MD5: dict[str, str] = {
    "python": "c58f30108f718f92721af3b95e74349a",
    "binary": "c32a1d4ab5d03f1284b67883e8d87530",
}
DIRECTORIES: dict[str, str] = {
    "python": "cifar-10-batches-py",
    "binary": "cifar-10-batches-bin",
}
TRAIN_FILES: dict[str, list[str]] = {
    "python": [f"data_batch_{i}" for i in range(1, 6)],
    "binary": [f"data_batch_{i}.bin" for i in range(1, 6)],
}
TEST_FILES: dict[str, str] = {"python": "test_batch", "binary": "test_batch.bin"}
META_FILES: dict[str, str] = {"python": "batches.meta", "binary": "batches.meta.txt"}

CIFAR10_CLASSES: list[str] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2471, 0.2435, 0.2616)

PIXELS = 3 * 32 * 32  # 3072 bytes per image, row-major CHW
_RECORD = 1 + PIXELS  # binary format: 1 label byte + pixels


def check_format(fmt: str) -> Format:
    """``fmt`` if it is a CIFAR-10 format ("python" or "binary"), else a ValueError."""
    if fmt not in ARCHIVES:
        raise ValueError(f"unknown CIFAR-10 format {fmt!r}; choose one of {sorted(ARCHIVES)}")
    return fmt  # type: ignore[return-value]


#: the largest array a batch file may hold: a CIFAR-10 batch's pixels are 30 720 000 bytes
MAX_ARRAY_BYTES = 64 * 2**20


def _check_size(shape: Any, dtype: Any) -> None:
    """Refuse an array claiming more than `MAX_ARRAY_BYTES` before it is allocated."""
    try:
        dims = [int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,))]
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError, OverflowError) as error:
        raise pickle.UnpicklingError(f"refusing array of shape {shape!r}: {error}") from None
    if any(n < 0 for n in dims) or math.prod(dims) * max(itemsize, 1) > MAX_ARRAY_BYTES:
        raise pickle.UnpicklingError(
            f"refusing array of shape {tuple(dims)} and dtype {dtype!r}: more than "
            f"{MAX_ARRAY_BYTES:,} bytes (CIFAR-10 batches are smaller)"
        )


def _safe_numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    import _codecs

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError(f"refusing to rebuild an array of type {subtype!r}")
        _check_size(shape, dtype)
        return multiarray._reconstruct(np.ndarray, shape, dtype)

    def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> Any:
        _check_size(shape, dtype)
        return numeric._frombuffer(buffer, dtype, shape, order)  # type: ignore[attr-defined]

    allowed: dict[tuple[str, str], Any] = {}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        # protocol 5 pickles rebuild arrays with numeric._frombuffer
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = _NDARRAY
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _codecs.encode
    return allowed


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: only `_reconstruct` may use it (calling
    ``ndarray(shape)`` directly would allocate any size)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("refusing to call numpy.ndarray from a pickle")


_NDARRAY = _NdarrayToken()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and nothing else.

    Plain values (dict, list, tuple, str, bytes, int, float, bool, None) need no globals. The
    only globals resolved are those numpy needs to rebuild an ndarray / dtype / scalar
    (``numpy[._]core.multiarray._reconstruct`` and ``.scalar``,
    ``numpy[._]core.numeric._frombuffer``, ``numpy.ndarray``, ``numpy.dtype``) and
    ``_codecs.encode`` (protocol-2 bytes); any other global raises
    :class:`pickle.UnpicklingError` naming it, before anything is called. An array claiming
    more than `MAX_ARRAY_BYTES` is refused before it is allocated.
    """

    _ALLOWED: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedUnpickler._ALLOWED is None:
            RestrictedUnpickler._ALLOWED = _safe_numpy_globals()
        try:
            return RestrictedUnpickler._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: CIFAR-10 batches contain only "
                "numpy arrays and plain containers"
            ) from None


def restricted_load(file: BinaryIO, *, encoding: str = "latin1") -> Any:
    """``pickle.load`` through :class:`RestrictedUnpickler` (``latin1`` reads Python 2 pickles)."""
    return RestrictedUnpickler(file, encoding=encoding).load()


def _key(d: dict[Any, Any], key: str) -> Any:
    if key in d:
        return d[key]
    if key.encode() in d:
        return d[key.encode()]
    raise KeyError(key)


def _corrupt(path: Path, why: str) -> CIFAR10Error:
    return CIFAR10Error(
        f"{path} is corrupt or truncated ({why}). Delete {path.parent} (and the archive if it "
        "was damaged) and re-extract or re-download."
    )


def _to_tensors(
    data: np.ndarray, labels: np.ndarray, path: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise _corrupt(path, "labels outside 0..9")
    images = torch.from_numpy(np.ascontiguousarray(data, dtype=np.uint8)).reshape(-1, 3, 32, 32)
    return images, torch.from_numpy(labels.astype(np.int64))


def read_python_batch(path: str | os.PathLike[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one python-format batch: images uint8 [n, 3, 32, 32], labels int64 [n]."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = restricted_load(f)
    except FileNotFoundError:
        raise _corrupt(path, "file missing") from None
    except pickle.UnpicklingError as error:
        if "refusing" in str(error):
            raise
        raise _corrupt(path, f"unpickling failed: {error}") from error
    except (EOFError, ValueError, TypeError, IndexError, AttributeError) as error:
        raise _corrupt(path, f"unpickling failed: {error!r}") from error
    try:
        data = np.asarray(_key(batch, "data"))
        labels = np.asarray(_key(batch, "labels"), dtype=np.int64)
    except (KeyError, TypeError, ValueError) as error:
        raise _corrupt(path, f"not a CIFAR-10 batch dict: {error!r}") from error
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise _corrupt(path, f"data is {data.dtype} {data.shape}, expected uint8 [n, {PIXELS}]")
    if labels.shape != (data.shape[0],):
        raise _corrupt(path, f"{labels.shape[0]} labels for {data.shape[0]} images")
    return _to_tensors(data, labels, path)


def read_binary_batch(path: str | os.PathLike[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one binary-format batch (records of 1 label byte + 3072 pixel bytes)."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise _corrupt(path, "file missing") from None
    if raw.size == 0 or raw.size % _RECORD:
        raise _corrupt(path, f"size {raw.size} bytes is not a positive multiple of {_RECORD}")
    records = raw.reshape(-1, _RECORD)
    return _to_tensors(records[:, 1:], records[:, 0].astype(np.int64), path)


def read_classes(directory: Path, fmt: Format) -> list[str]:
    """The 10 class names from the batch directory's meta file."""
    path = directory / META_FILES[fmt]
    if fmt == "binary":
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError) as error:
            raise _corrupt(path, repr(error)) from error
        classes = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        try:
            with open(path, "rb") as f:
                meta = restricted_load(f)
            names = _key(meta, "label_names")
        except pickle.UnpicklingError as error:
            if "refusing" in str(error):
                raise
            raise _corrupt(path, repr(error)) from error
        except (OSError, EOFError, KeyError, TypeError, ValueError) as error:
            raise _corrupt(path, repr(error)) from error
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if len(classes) != 10:
        raise _corrupt(path, f"{len(classes)} class names, expected 10")
    return classes
