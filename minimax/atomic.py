"""Atomic file writes: the content goes to a temporary file next to the target
(``.<name>.XXXXXXXX<suffix>``), is flushed and fsynced, then ``os.replace``-d onto it; an
exception inside the block deletes the temporary file and leaves the previous target intact.
``os.replace`` swaps the directory entry: a symlink at the target is replaced, never written
through. The file gets the permissions of a plainly created one (0666 minus the umask), not
mkstemp's 0600.

Public: `atomic_file`, `temporary_prefix`. The library writes RobustBench records with it;
the instances (`minimax_problems.files`) build their checkpoint, log and page writers on it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_file", "temporary_prefix"]


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], mode: str = "wb", *, suffix: str = ".tmp"
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` (``mode`` ``"wb"`` or ``"w"``, UTF-8); on a clean
    exit it replaces ``path``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it (mkstemp's is 0600)
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename (not supported everywhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def temporary_prefix(name: str) -> str:
    """The name prefix of `atomic_file`'s temporary files for the target ``name``."""
    return f".{name}."


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
