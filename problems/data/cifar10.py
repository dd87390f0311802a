"""CIFAR-10 from the official archives, as plain uint8 tensors.

Public API (images are NCHW)::

    load_cifar10(root, train=True, *, download=False, format="auto", md5=None,
                 base_url=BASE_URL, progress=True)
        -> (images uint8 [N, 3, 32, 32], labels int64 [N], classes list[str])
    load_cifar10_splits(root, *, val_size=0, seed=0, download=False, format="auto", md5=None,
                        base_url=BASE_URL, progress=True) -> CIFAR10Splits

Layout on disk: ``root/cifar-10-python.tar.gz`` extracts to ``root/cifar-10-batches-py/``;
``root/cifar-10-binary.tar.gz`` extracts to ``root/cifar-10-batches-bin/`` (see
`problems.data.cifar10_files`). An already extracted directory is read directly. Errors are
:class:`~problems.data.errors.CIFAR10Error` (and subclasses), each saying what to do next.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .archives import download_archive, safe_extract, verify_archive
from .cifar10_files import (
    ARCHIVES,
    BASE_URL,
    DIRECTORIES,
    MD5,
    TEST_FILES,
    TRAIN_FILES,
    Format,
    check_format,
    read_binary_batch,
    read_classes,
    read_python_batch,
)
from .errors import CIFAR10Error, CIFAR10NotFoundError
from .splits import train_val_split

__all__ = ["CIFAR10Splits", "load_cifar10", "load_cifar10_splits"]


def _extract_to(archive: Path, root: Path, fmt: Format) -> Path:
    """Extract ``archive`` via a temporary directory, then move the batch directory into place."""
    final = root / DIRECTORIES[fmt]
    for stale in root.glob(f".{DIRECTORIES[fmt]}.*"):  # left by a killed extraction
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DIRECTORIES[fmt]}.", dir=root))
    try:
        safe_extract(archive, tmp)
        extracted = tmp / DIRECTORIES[fmt]
        if not extracted.is_dir():
            raise CIFAR10Error(
                f"{archive} does not contain {DIRECTORIES[fmt]}/: not a CIFAR-10 {fmt} archive. "
                "Delete it and re-download."
            )
        if not final.exists():
            os.replace(extracted, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _resolve(root: Path, format: str, download: bool) -> Format:
    """Pick the format: an extracted directory first, then an archive, then download python."""
    if format != "auto":
        return check_format(format)
    formats: tuple[Format, Format] = ("python", "binary")
    for fmt in formats:
        if (root / DIRECTORIES[fmt]).is_dir():
            return fmt
    for fmt in formats:
        if (root / ARCHIVES[fmt]).is_file():
            return fmt
    if download:
        return "python"
    raise _not_found(root, "python")


def _not_found(root: Path, fmt: Format) -> CIFAR10NotFoundError:
    return CIFAR10NotFoundError(
        f"CIFAR-10 not found in {root}: pass download=True or `minimax train --download`, or "
        f"place {ARCHIVES[fmt]} (or the extracted {DIRECTORIES[fmt]}/) there."
    )


def _prepare(
    root: Path, fmt: Format, *, download: bool, md5: str | None, base_url: str, progress: bool
) -> Path:
    """Return the extracted batch directory, extracting / downloading as needed."""
    directory = root / DIRECTORIES[fmt]
    if directory.is_dir():
        return directory
    archive = root / ARCHIVES[fmt]
    if not archive.is_file():
        if not download:
            raise _not_found(root, fmt)
        download_archive(root, fmt, base_url=base_url, md5=md5, progress=progress)
    verify_archive(archive, md5 or MD5[fmt])
    return _extract_to(archive, root, fmt)


def load_cifar10(
    root: str | os.PathLike[str],
    train: bool = True,
    *,
    download: bool = False,
    format: str = "auto",
    md5: str | None = None,
    base_url: str = BASE_URL,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load the CIFAR-10 train (50 000) or test (10 000) set from ``root``.

    Args:
        root: data directory holding the archive and / or the extracted batch directory.
        train: the five training batches if True, else the test batch.
        download: fetch the official archive when neither archive nor directory is present.
        format: ``"python"``, ``"binary"`` or ``"auto"`` (an extracted directory, then an
            archive, python first; downloads the python version).
        md5: expected archive MD5 (default: the published one); checked before extracting.
        base_url: where to download from (``<base_url>/<archive name>``).
        progress: show a tqdm progress bar while downloading.

    Returns:
        images uint8 [N, 3, 32, 32], labels int64 [N], the 10 class names.
    """
    root = Path(root)
    fmt = _resolve(root, format, download)
    directory = _prepare(
        root, fmt, download=download, md5=md5, base_url=base_url, progress=progress
    )
    files = TRAIN_FILES[fmt] if train else [TEST_FILES[fmt]]
    reader = read_python_batch if fmt == "python" else read_binary_batch
    parts = [reader(directory / name) for name in files]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    return images, labels, read_classes(directory, fmt)


@dataclass(frozen=True)
class CIFAR10Splits:
    """Train / validation / test tensors (uint8 NCHW images, int64 labels) and class names."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]


def load_cifar10_splits(
    root: str | os.PathLike[str],
    *,
    val_size: int | float = 0,
    seed: int = 0,
    download: bool = False,
    format: str = "auto",
    md5: str | None = None,
    base_url: str = BASE_URL,
    progress: bool = True,
) -> CIFAR10Splits:
    """Train set minus a held-out validation set (see :func:`train_val_split`), and the test set."""
    kwargs: dict[str, Any] = dict(
        download=download, format=format, md5=md5, base_url=base_url, progress=progress
    )
    x, y, classes = load_cifar10(root, train=True, **kwargs)
    x_test, y_test, _ = load_cifar10(root, train=False, **kwargs)
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, val_size, seed=seed)
    return CIFAR10Splits(x_tr, y_tr, x_val, y_val, x_test, y_test, classes)
