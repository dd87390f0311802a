"""Archives: MD5 checksums, a retrying verified download, and safe tar extraction.

Public API::

    md5sum(path) -> str
    verify_archive(path, md5) -> None              (raises ChecksumError)
    download_archive(root, format="python", *, base_url=BASE_URL, md5=None, progress=True,
                     retries=3, timeout=60.0) -> Path
    safe_extract(archive, destination) -> None     (raises UnsafeArchiveError / CIFAR10Error)
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import posixpath
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import IO

from tqdm import tqdm

from problems.data.cifar10_files import ARCHIVES, BASE_URL, MD5, check_format
from problems.data.errors import ChecksumError, CIFAR10Error, UnsafeArchiveError
from problems.files import atomic_file

__all__ = ["download_archive", "md5sum", "safe_extract", "verify_archive"]

_CHUNK = 1 << 16


class _Corrupt(Exception):
    """A download whose MD5 is not the expected one (the temporary file is discarded)."""


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
    fmt = check_format(format)
    expected = (md5 or MD5[fmt]).lower()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = ARCHIVES[fmt]
    url = base_url.rstrip("/") + "/" + name
    target = root / name
    last_md5 = ""
    for _ in range(max(1, retries)):
        try:
            with atomic_file(target, "wb", suffix=".part") as out:
                last_md5 = _fetch(url, out, timeout=timeout, progress=progress, desc=name)
                if last_md5 != expected:
                    raise _Corrupt  # discards the temporary file; try again
            return target
        except _Corrupt:
            continue
    raise ChecksumError(
        f"the download of {url} is corrupt: MD5 {last_md5}, expected {expected} "
        f"(after {max(1, retries)} attempts). The partial file was deleted; retry later or "
        f"place {name} in {root} yourself."
    )


def _fetch(url: str, out: IO[bytes], *, timeout: float, progress: bool, desc: str) -> str:
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

