"""The registry of image data sets: name → loader, read by the CLI (``--dataset`` choices),
``minimax evaluate`` and anything else that needs data by name.

Public API::

    DATASETS                         Registry: name → loader (cifar10, synthetic, digits)
    load_dataset(name, data_dir, *, download=False, progress=True, seed=0) -> ImageData
    ImageData(train, test, num_classes)   .in_channels, .image_size

A loader is ``(data_dir: Path, *, download: bool, progress: bool, seed: int) -> ImageData``;
it raises `problems.data.errors.DatasetError` (with what to do) when the data is not there.
To add a data set, register one loader here: the CLI, the trainer and the models read the
image shape and the number of classes from the `ImageData` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from minimax.registry import Registry

from ..extras import MissingExtraError
from . import digits
from .cifar10 import load_cifar10
from .cifar10_files import ARCHIVES, DIRECTORIES
from .errors import CIFAR10NotFoundError, DatasetError
from .synthetic import synthetic_md5, write_synthetic_cifar10

__all__ = ["DATASETS", "ImageData", "load_dataset"]


@dataclass(frozen=True)
class ImageData:
    """Train and test sets in memory: images [N, C, H, W] (uint8, or float in [0, 1]) and
    labels int64 [N], with ``num_classes`` classes."""

    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    num_classes: int

    @property
    def in_channels(self) -> int:
        """C, the image channels."""
        return int(self.train[0].shape[1])

    @property
    def image_size(self) -> int:
        """W, the image side (images are square)."""
        return int(self.train[0].shape[-1])


DATASETS: Registry[ImageData] = Registry("dataset")


@DATASETS.register("cifar10")
def cifar10(data_dir: Path, *, download: bool, progress: bool, seed: int = 0) -> ImageData:
    """CIFAR-10 (50 000 + 10 000 RGB 32×32 images) from the official archive in --data-dir."""
    del seed  # the official split
    if not data_dir.is_dir() and not download:
        raise CIFAR10NotFoundError(
            f"data directory {data_dir} does not exist: pass --download to fetch CIFAR-10 "
            "into it, or point --data-dir at a directory holding cifar-10-python.tar.gz"
        )
    return _load_cifar10(data_dir, download=download, md5=None, progress=progress)


#: the size of the generated synthetic data set (its archive's MD5 follows from it)
_SYNTHETIC: dict[str, Any] = {"n_train_per_batch": 40, "n_test": 100}


@DATASETS.register("synthetic")
def synthetic(data_dir: Path, *, download: bool, progress: bool, seed: int = 0) -> ImageData:
    """a tiny generated CIFAR-format archive (written into --data-dir when it holds none)"""
    del download, seed  # generated, never downloaded
    names = (*ARCHIVES.values(), *DIRECTORIES.values())
    has_data = any((data_dir / name).exists() for name in names)
    if not has_data:
        write_synthetic_cifar10(data_dir, **_SYNTHETIC)
    # the expected checksum comes from the generator, never from the archive being checked
    return _load_cifar10(
        data_dir, download=False, md5=synthetic_md5(**_SYNTHETIC), progress=progress
    )


@DATASETS.register("digits")
def digits_8x8(data_dir: Path, *, download: bool, progress: bool, seed: int = 0) -> ImageData:
    """scikit-learn's 8×8 handwritten digits (grey, 1 347 + 450 images; no download)"""
    del data_dir, download, progress  # ships with scikit-learn
    try:
        split = digits.load(seed=seed)
    except MissingExtraError as error:
        raise DatasetError(str(error)) from None
    return ImageData(split.train, split.test, digits.NUM_CLASSES)


def _load_cifar10(data_dir: Path, *, download: bool, md5: str | None, progress: bool) -> ImageData:
    x, y, classes = load_cifar10(
        data_dir, train=True, download=download, md5=md5, progress=progress
    )
    xt, yt, _ = load_cifar10(data_dir, train=False, download=download, md5=md5, progress=progress)
    return ImageData((x, y), (xt, yt), len(classes))


def load_dataset(
    name: str, data_dir: Path, *, download: bool = False, progress: bool = True, seed: int = 0
) -> ImageData:
    """``DATASETS.build(name, ...)``: the named data set (an unknown name lists the choices)."""
    return DATASETS.build(name, Path(data_dir), download=download, progress=progress, seed=seed)
