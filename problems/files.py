"""Atomic file writes: the one writer behind every file the trainer, the data loaders, the demo
and the reports write.

Public API::

    atomic_file(path, mode="wb") -> context manager yielding the open temporary file
    atomic_save(obj, path)          torch.save, atomically
    atomic_write_text(path, text)   a text file (UTF-8), atomically

The content goes to a temporary file in the same directory, is flushed and fsynced, then
``os.replace``-d onto ``path``; an exception inside the block deletes the temporary file and
leaves the previous ``path`` intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["atomic_file", "atomic_save", "atomic_write_text"]


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], mode: str = "wb", *, suffix: str = ".tmp"
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit it replaces ``path``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
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


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a crash leaves the previous file intact)."""
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path, "w") as f:
        f.write(text)
