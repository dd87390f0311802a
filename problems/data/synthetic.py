"""Small synthetic CIFAR-10 archives in the official format and layout (tests, smoke runs).

Public API::

    write_synthetic_cifar10(directory, *, n_train_per_batch=20, n_test=20, format="python",
                            seed=0) -> Path        (archive with the official layout; md5sum it)
    synthetic_md5(**same keywords) -> str            the MD5 the generator produces for them

An archive found on disk is never its own reference: `synthetic_md5` regenerates the archive
(deterministic, byte for byte) in a temporary directory and returns its MD5, the checksum to
verify the file on disk against.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ..files import atomic_file
from .cifar10_files import (
    ARCHIVES,
    CIFAR10_CLASSES,
    DIRECTORIES,
    META_FILES,
    PIXELS,
    TEST_FILES,
    TRAIN_FILES,
    check_format,
)

__all__ = ["synthetic_md5", "write_synthetic_cifar10"]


def _synthetic_split(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
    """Class-dependent images: a per-class colour, a per-class stripe pattern, plus noise."""
    labels = rng.permutation(np.arange(n) % 10)
    colours = np.array(
        [
            [220, 40, 40],
            [40, 220, 40],
            [40, 40, 220],
            [220, 220, 40],
            [220, 40, 220],
            [40, 220, 220],
            [128, 128, 128],
            [240, 160, 60],
            [60, 160, 240],
            [20, 20, 20],
        ],
        dtype=np.float64,
    )
    yy, xx = np.mgrid[0:32, 0:32]
    patterns = np.stack([np.sin((yy * np.cos(k) + xx * np.sin(k)) * 0.6) for k in range(10)])
    images = (
        colours[labels][:, :, None, None] * 0.7
        + 30.0 * patterns[labels][:, None]
        + rng.normal(0.0, 20.0, size=(n, 3, 32, 32))
    )
    data = np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(n, PIXELS)
    return data, [int(c) for c in labels]


def _add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(payload))


def write_synthetic_cifar10(
    directory: str | os.PathLike[str],
    *,
    n_train_per_batch: int = 20,
    n_test: int = 20,
    format: str = "python",
    seed: int = 0,
) -> Path:
    """Write a small CIFAR-10 archive in the official format and layout; returns its path.

    ``directory/cifar-10-python.tar.gz`` (pickled dicts, protocol 2, keys ``data`` uint8
    [n, 3072] / ``labels`` / ``batch_label`` / ``filenames``; ``batches.meta`` with
    ``label_names``) or ``directory/cifar-10-binary.tar.gz`` (1 + 3072 byte records,
    ``batches.meta.txt``). Each of the 5 training batches holds ``n_train_per_batch`` images, the
    test batch ``n_test``; classes are balanced and visually separable (colour and stripes).
    The archive is byte-for-byte deterministic given the arguments: its MD5 (:func:`md5sum`) is
    what to pass as ``md5=``.
    """
    fmt = check_format(format)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files: list[tuple[str, bytes]] = []
    splits = [
        (name, n_train_per_batch, f"training batch {i + 1} of 5")
        for i, name in enumerate(TRAIN_FILES[fmt])
    ]
    splits.append((TEST_FILES[fmt], n_test, "testing batch 1 of 1"))
    for name, n, batch_label in splits:
        data, labels = _synthetic_split(rng, n)
        files.append((name, _batch_payload(fmt, batch_label, data, labels)))
    if fmt == "python":
        meta = {
            "num_cases_per_batch": n_train_per_batch,
            "label_names": list(CIFAR10_CLASSES),
            "num_vis": PIXELS,
        }
        files.append((META_FILES[fmt], pickle.dumps(meta, protocol=2)))
    else:
        files.append((META_FILES[fmt], ("\n".join(CIFAR10_CLASSES) + "\n\n").encode()))
    files.append(("readme.html", b"<html><body>Synthetic CIFAR-10 for tests.</body></html>\n"))
    archive = directory / ARCHIVES[fmt]
    _write_tar_gz(archive, DIRECTORIES[fmt], files)
    return archive


def _batch_payload(fmt: str, batch_label: str, data: np.ndarray, labels: list[int]) -> bytes:
    """One batch file: a pickled dict (python format) or 1 + 3072 byte records (binary)."""
    if fmt == "binary":
        records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], data], axis=1)
        return records.tobytes()
    batch = {
        "batch_label": batch_label,
        "labels": labels,
        "data": data,
        "filenames": [f"synthetic_{i:05d}.png" for i in range(len(labels))],
    }
    return pickle.dumps(batch, protocol=2)


def _write_tar_gz(archive: Path, top: str, files: list[tuple[str, bytes]]) -> None:
    """A deterministic .tar.gz (mtime 0) holding ``top/`` and ``top/<name>`` for each file."""
    with (
        atomic_file(archive, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        info = tarfile.TarInfo(top)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = 0
        tar.addfile(info)
        for name, payload in files:
            _add_bytes(tar, f"{top}/{name}", payload)


@functools.lru_cache(maxsize=8)
def synthetic_md5(
    *, n_train_per_batch: int = 20, n_test: int = 20, format: str = "python", seed: int = 0
) -> str:
    """The MD5 of `write_synthetic_cifar10`'s archive for these arguments, from the generator
    (regenerated in a temporary directory), never from a file found on disk."""
    with tempfile.TemporaryDirectory(prefix="minimax-synthetic-") as tmp:
        archive = write_synthetic_cifar10(
            tmp, n_train_per_batch=n_train_per_batch, n_test=n_test, format=format, seed=seed
        )
        digest = hashlib.md5(archive.read_bytes(), usedforsecurity=False)
    return digest.hexdigest()
