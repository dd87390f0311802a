"""The data errors: each message says what to do next."""

from __future__ import annotations

__all__ = [
    "CIFAR10Error",
    "CIFAR10NotFoundError",
    "ChecksumError",
    "DatasetError",
    "UnsafeArchiveError",
]


class DatasetError(RuntimeError):
    """A data set cannot be loaded (missing, corrupt, unsafe); the message says what to do."""


class CIFAR10Error(DatasetError):
    """A CIFAR-10 file is missing, corrupt or unsafe; the message says what to do."""


class CIFAR10NotFoundError(CIFAR10Error, FileNotFoundError):
    """Neither an extracted directory nor an archive was found (and ``download=False``)."""


class ChecksumError(CIFAR10Error, ValueError):
    """An archive's MD5 differs from the expected one."""


class UnsafeArchiveError(CIFAR10Error, ValueError):
    """A tar member would write outside the destination, or is a link / device."""
