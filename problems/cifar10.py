"""CIFAR-10 from the official archives, as plain uint8 tensors, with tensor-op augmentation.

Public API (shapes: N images, B batch; images are NCHW)::

    load_cifar10(root, train=True, *, download=False, format="auto", md5=None,
                 base_url=BASE_URL, progress=True)
        -> (images uint8 [N, 3, 32, 32], labels int64 [N], classes list[str])
    load_cifar10_splits(root, *, val_size=0, seed=0, download=False, format="auto", md5=None,
                        base_url=BASE_URL, progress=True) -> CIFAR10Splits
    train_val_split(images, labels, val_size, *, seed=0)
        -> (train_images, train_labels, val_images, val_labels)
    batches(images, labels, batch_size, *, shuffle=False, generator=None, augment=False,
            padding=4, drop_last=False, device=None)
        -> Iterator[(float32 [B, C, H, W] in [0, 1], int64 [B])]
    to_float(images) -> float32 in [0, 1]          (uint8 / 255; float input is passed through)
    random_crop(images, *, padding=4, generator=None) -> same shape and dtype
    random_flip(images, *, generator=None, p=0.5) -> same shape and dtype
    augment(images, *, padding=4, generator=None) -> random_flip(random_crop(images))
    download_archive(root, format="python", *, base_url=BASE_URL, md5=None, progress=True,
                     retries=3, timeout=60.0) -> Path
    verify_archive(path, md5) -> None              (raises ChecksumError)
    md5sum(path) -> str
    safe_extract(archive, destination) -> None     (raises UnsafeArchiveError / CIFAR10Error)
    restricted_load(file) -> object                (pickle.load that builds only numpy arrays and
                                                    plain containers)
    read_python_batch(path) / read_binary_batch(path)
        -> (images uint8 [n, 3, 32, 32], labels int64 [n])
    write_synthetic_cifar10(directory, *, n_train_per_batch=20, n_test=20, format="python",
                            seed=0) -> Path        (archive with the official layout; md5sum it)

Layout on disk: ``root/cifar-10-python.tar.gz`` extracts to ``root/cifar-10-batches-py/``
(``data_batch_1..5``, ``test_batch``, ``batches.meta``); ``root/cifar-10-binary.tar.gz`` extracts
to ``root/cifar-10-batches-bin/`` (``data_batch_1.bin..5``, ``test_batch.bin``,
``batches.meta.txt``). An already extracted directory is read directly. Errors are
:class:`CIFAR10Error` (and subclasses), each saying what to do next.

Randomness (shuffling, augmentation, the validation split) goes through an explicit
``torch.Generator`` or seed.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import posixpath
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
from tqdm import tqdm

__all__ = [
    "ARCHIVES",
    "BASE_URL",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DIRECTORIES",
    "MD5",
    "URLS",
    "CIFAR10Error",
    "CIFAR10NotFoundError",
    "CIFAR10Splits",
    "ChecksumError",
    "RestrictedUnpickler",
    "UnsafeArchiveError",
    "augment",
    "batches",
    "download_archive",
    "load_cifar10",
    "load_cifar10_splits",
    "md5sum",
    "random_crop",
    "random_flip",
    "read_binary_batch",
    "read_python_batch",
    "restricted_load",
    "safe_extract",
    "to_float",
    "train_val_split",
    "verify_archive",
    "write_synthetic_cifar10",
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
_TRAIN_FILES: dict[str, list[str]] = {
    "python": [f"data_batch_{i}" for i in range(1, 6)],
    "binary": [f"data_batch_{i}.bin" for i in range(1, 6)],
}
_TEST_FILES: dict[str, str] = {"python": "test_batch", "binary": "test_batch.bin"}
_META_FILES: dict[str, str] = {"python": "batches.meta", "binary": "batches.meta.txt"}

CIFAR10_CLASSES: list[str] = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2471, 0.2435, 0.2616)

_PIXELS = 3 * 32 * 32  # 3072 bytes per image, row-major CHW
_RECORD = 1 + _PIXELS  # binary format: 1 label byte + pixels
_CHUNK = 1 << 16


# --------------------------------------------------------------------------------------------
# errors


class CIFAR10Error(RuntimeError):
    """A CIFAR-10 file is missing, corrupt or unsafe; the message says what to do."""


class CIFAR10NotFoundError(CIFAR10Error, FileNotFoundError):
    """Neither an extracted directory nor an archive was found (and ``download=False``)."""


class ChecksumError(CIFAR10Error, ValueError):
    """An archive's MD5 differs from the expected one."""


class UnsafeArchiveError(CIFAR10Error, ValueError):
    """A tar member would write outside the destination, or is a link / device."""


def _check_format(fmt: str) -> Format:
    if fmt not in ARCHIVES:
        raise ValueError(f"unknown CIFAR-10 format {fmt!r}; choose one of {sorted(ARCHIVES)}")
    return fmt  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# checksums and download


def md5sum(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_archive(path: str | os.PathLike[str], md5: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has MD5 ``md5`` (case-insensitive)."""
    actual = md5sum(path)
    if actual.lower() != md5.lower():
        raise ChecksumError(
            f"checksum mismatch for {path}: MD5 is {actual}, expected {md5}. The file is corrupt "
            "or incomplete: delete it and re-download (download=True or `minimax train "
            "--download`)."
        )


def download_archive(
    root: str | os.PathLike[str],
    format: str = "python",
    *,
    base_url: str = BASE_URL,
    md5: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download the official archive into ``root`` and verify its MD5; returns its path.

    The file is streamed into a temporary file in ``root`` (with a tqdm progress bar when
    ``progress``), checked against ``md5`` (default: the published checksum for ``format``) and
    atomically renamed to ``root/<archive name>``. A corrupt or incomplete download is deleted
    and retried, ``retries`` attempts in all; then :class:`ChecksumError` is raised. HTTP and
    connection errors raise :class:`CIFAR10Error` at once.
    """
    fmt = _check_format(format)
    expected = (md5 or MD5[fmt]).lower()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = ARCHIVES[fmt]
    url = base_url.rstrip("/") + "/" + name
    target = root / name
    last_md5 = ""
    for _ in range(max(1, retries)):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                last_md5 = _fetch(url, out, timeout=timeout, progress=progress, desc=name)
            if last_md5 == expected:
                os.replace(tmp, target)
                return target
        finally:
            tmp.unlink(missing_ok=True)
    raise ChecksumError(
        f"the download of {url} is corrupt: MD5 {last_md5}, expected {expected} "
        f"(after {max(1, retries)} attempts). The partial file was deleted; retry later or "
        f"place {name} in {root} yourself."
    )


def _fetch(url: str, out: BinaryIO, *, timeout: float, progress: bool, desc: str) -> str:
    """Stream ``url`` into ``out``; returns the MD5 of what was written (or a non-MD5 string
    when the connection closed early). Other network errors raise :class:`CIFAR10Error`."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=not progress,
            ) as bar:  # fmt: skip
                received = 0
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
        if total is not None and received != total:
            return f"incomplete transfer ({received} of {total} bytes)"  # caller retries
    except http.client.IncompleteRead:
        return "incomplete transfer"  # never equals an MD5: the caller retries
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise CIFAR10Error(
            f"could not download {url}: {error}. Check the network, or download the archive "
            "by hand and place it in the data directory."
        ) from error
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# safe extraction


def _is_absolute(name: str) -> bool:
    """POSIX or Windows absolute path (backslashes are refused outright)."""
    return name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":")


def _check_member(member: tarfile.TarInfo) -> None:
    """Raise :class:`UnsafeArchiveError` for a member that could escape the destination."""
    name = member.name
    if _is_absolute(name):
        raise UnsafeArchiveError(f"refusing tar member with an absolute path: {name!r}")
    parts = name.split("/")
    if ".." in parts:
        raise UnsafeArchiveError(f"refusing tar member with '..' in its path: {name!r}")
    if member.issym() or member.islnk():
        target = member.linkname
        if _is_absolute(target):
            raise UnsafeArchiveError(f"refusing link {name!r} to absolute path {target!r}")
        # symlinks resolve relative to their own directory, hard links relative to the root
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            raise UnsafeArchiveError(f"refusing link {name!r} pointing outside: {target!r}")
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"refusing tar member {name!r}: not a regular file or directory (device, fifo, ...)"
        )


def safe_extract(archive: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
    """Extract a .tar.gz into ``destination`` after checking every member.

    Refuses absolute paths, ``..`` components, links pointing outside and anything that is not a
    regular file, directory or in-tree link (:class:`UnsafeArchiveError`); also applies
    tarfile's ``"data"`` filter where available. A truncated or damaged archive raises
    :class:`CIFAR10Error`.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            root = destination.resolve()
            for member in members:
                path = (destination / member.name).resolve()
                if path != root and root not in path.parents:
                    raise UnsafeArchiveError(f"refusing tar member {member.name!r}: escapes")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.10.12
                tar.extractall(destination, members=members)
    except UnsafeArchiveError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise CIFAR10Error(
            f"cannot extract {archive}: {error}. The archive is corrupt or truncated: delete it "
            "and re-download."
        ) from error


def _extract_to(archive: Path, root: Path, fmt: Format) -> Path:
    """Extract ``archive`` via a temporary directory, then move the batch directory into place."""
    final = root / DIRECTORIES[fmt]
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


# --------------------------------------------------------------------------------------------
# batch readers


def _safe_numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    import _codecs

    allowed: dict[tuple[str, str], Any] = {}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        # protocol 5 pickles rebuild arrays with numeric._frombuffer
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _codecs.encode
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and nothing else.

    Plain values (dict, list, tuple, str, bytes, int, float, bool, None) need no globals. The
    only globals resolved are those numpy needs to rebuild an ndarray / dtype / scalar
    (``numpy[._]core.multiarray._reconstruct`` and ``.scalar``,
    ``numpy[._]core.numeric._frombuffer``, ``numpy.ndarray``, ``numpy.dtype``) and
    ``_codecs.encode`` (protocol-2 bytes); any other global raises
    :class:`pickle.UnpicklingError` naming it, before anything is called.
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
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise _corrupt(path, f"data is {data.dtype} {data.shape}, expected uint8 [n, {_PIXELS}]")
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


def _read_classes(directory: Path, fmt: Format) -> list[str]:
    path = directory / _META_FILES[fmt]
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


# --------------------------------------------------------------------------------------------
# the dataset API


def _resolve(root: Path, format: str, download: bool) -> Format:
    """Pick the format: an extracted directory first, then an archive, then download python."""
    if format != "auto":
        return _check_format(format)
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
    files = _TRAIN_FILES[fmt] if train else [_TEST_FILES[fmt]]
    reader = read_python_batch if fmt == "python" else read_binary_batch
    parts = [reader(directory / name) for name in files]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    return images, labels, _read_classes(directory, fmt)


def train_val_split(
    images: torch.Tensor, labels: torch.Tensor, val_size: int | float, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hold out a random, seed-determined validation set.

    ``val_size`` is a count, or a fraction in (0, 1). Both parts keep the original order.
    Returns train_images, train_labels, val_images, val_labels.
    """
    n = images.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{n} images but {labels.shape[0]} labels")
    n_val = round(val_size * n) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 <= n_val <= n:
        raise ValueError(f"val_size={val_size} must be in [0, {n}] (or a fraction in [0, 1))")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx = perm[:n_val].sort().values
    train_idx = perm[n_val:].sort().values
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


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


# --------------------------------------------------------------------------------------------
# augmentation and batching


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [..., C, H, W] -> float32 in [0, 1] (divides by 255); floating input is unchanged."""
    if images.is_floating_point():
        return images
    return images.to(torch.float32).div_(255.0)


def _generator_device(images: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else images.device


def random_crop(
    images: torch.Tensor, *, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-example random crop of [B, C, H, W] images after zero padding by ``padding`` pixels.

    Each example gets its own offset (dy, dx) uniform in [0, 2 * padding]^2; output has the input's
    shape and dtype (uint8 or float).
    """
    if padding == 0:
        return images
    b, _, h, w = images.shape
    dev = _generator_device(images, generator)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(images.device)
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=images.device)[:, None, None]
    # advanced indices around a slice put the indexed dims first: [B, H, W, C]
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(
    images: torch.Tensor, *, generator: torch.Generator | None = None, p: float = 0.5
) -> torch.Tensor:
    """Flip each [C, H, W] example of a [B, C, H, W] batch left-right with probability ``p``."""
    dev = _generator_device(images, generator)
    flip = torch.rand(images.shape[0], generator=generator, device=dev).to(images.device) < p
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(
    images: torch.Tensor, *, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The standard CIFAR-10 augmentation: random crop (zero padding 4) then horizontal flip."""
    cropped = random_crop(images, padding=padding, generator=generator)
    return random_flip(cropped, generator=generator)


def batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    augment: bool = False,
    padding: int = 4,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float32 [B, C, H, W] in [0, 1], int64 [B]) mini-batches of an in-memory dataset.

    ``shuffle`` permutes the order with ``generator`` (the global RNG if None); ``augment``
    applies :func:`augment` (on the uint8 batch, moved to ``device`` first) with the same
    generator. The last short batch is kept unless ``drop_last``.
    """
    n = images.shape[0]
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle:
        dev = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=dev).cpu()
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        x, y = images[idx], labels[idx]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if augment:
            x = _augment(x, padding=padding, generator=generator)
        yield to_float(x), y


_augment = augment


# --------------------------------------------------------------------------------------------
# synthetic archives for tests


def _synthetic_split(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
    """Class-dependent images: a per-class colour, a per-class stripe pattern, plus noise."""
    labels = rng.permutation(np.arange(n) % 10)
    colours = np.array(
        [[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40], [220, 40, 220],
         [40, 220, 220], [128, 128, 128], [240, 160, 60], [60, 160, 240], [20, 20, 20]],
        dtype=np.float64,
    )  # fmt: skip
    yy, xx = np.mgrid[0:32, 0:32]
    patterns = np.stack([np.sin((yy * np.cos(k) + xx * np.sin(k)) * 0.6) for k in range(10)])
    images = (
        colours[labels][:, :, None, None] * 0.7
        + 30.0 * patterns[labels][:, None]
        + rng.normal(0.0, 20.0, size=(n, 3, 32, 32))
    )
    data = np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(n, _PIXELS)
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
    fmt = _check_format(format)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    top = DIRECTORIES[fmt]
    files: list[tuple[str, bytes]] = []
    splits = [(name, n_train_per_batch, f"training batch {i + 1} of 5")
              for i, name in enumerate(_TRAIN_FILES[fmt])]  # fmt: skip
    splits.append((_TEST_FILES[fmt], n_test, "testing batch 1 of 1"))
    for name, n, batch_label in splits:
        data, labels = _synthetic_split(rng, n)
        if fmt == "python":
            batch = {
                "batch_label": batch_label,
                "labels": labels,
                "data": data,
                "filenames": [f"synthetic_{i:05d}.png" for i in range(n)],
            }
            payload = pickle.dumps(batch, protocol=2)
        else:
            records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], data], axis=1)
            payload = records.tobytes()
        files.append((name, payload))
    if fmt == "python":
        meta = {"num_cases_per_batch": n_train_per_batch, "label_names": list(CIFAR10_CLASSES),
                "num_vis": _PIXELS}  # fmt: skip
        files.append((_META_FILES[fmt], pickle.dumps(meta, protocol=2)))
    else:
        files.append((_META_FILES[fmt], ("\n".join(CIFAR10_CLASSES) + "\n\n").encode()))
    files.append(("readme.html", b"<html><body>Synthetic CIFAR-10 for tests.</body></html>\n"))

    archive = directory / ARCHIVES[fmt]
    with (
        open(archive, "wb") as raw,
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
    return archive
