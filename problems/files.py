"""Atomic file writes: the one writer behind every file the trainer, the data loaders, the demo
and the reports write.

Public API::

    atomic_file(path, mode="wb") -> context manager yielding the open temporary file
    atomic_save(obj, path)          torch.save, atomically
    atomic_write_text(path, text)   a text file (UTF-8), atomically
    save_figure(fig, path, **kwargs)    a matplotlib figure (``fig.savefig``), atomically
    remove_orphans(directory, names) -> list[Path]   temporary files a killed write left behind

The content goes to a temporary file in the same directory, is flushed and fsynced, then
``os.replace``-d onto ``path``; an exception inside the block deletes the temporary file and
leaves the previous ``path`` intact. ``os.replace`` swaps the directory entry: a symlink at
``path`` is replaced by the new file, never written through. Every file gets the permissions
of a plainly created one (0666 minus the umask, e.g. 0644), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["atomic_file", "atomic_save", "atomic_write_text", "remove_orphans", "save_figure"]


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], mode: str = "wb", *, suffix: str = ".tmp"
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit it replaces ``path``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path.name), suffix=suffix, dir=path.parent)
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


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a crash leaves the previous file intact)."""
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path, "w") as f:
        f.write(text)


def save_figure(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> None:
    """``fig.savefig`` to ``path`` atomically; the format comes from the suffix (e.g. .png)."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_file(path, "wb") as f:
        fig.savefig(f, **kwargs)


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _prefix(name: str) -> str:
    """The name prefix of `atomic_file`'s temporary files for the target ``name``."""
    return f".{name}."


def remove_orphans(
    directory: str | os.PathLike[str], names: Iterable[str], *, suffixes: Iterable[str] = (".tmp",)
) -> list[Path]:
    """Delete the temporary files `atomic_file` left in ``directory`` for the targets ``names``
    when a write was killed (``.<name>.XXXXXXXX<suffix>``); returns what was removed.

    Only those names are touched: call it when no other process writes them (at the start of a
    run, before the first write)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    ends = tuple(suffixes)
    removed = []
    for name in names:
        for tmp in directory.glob(glob.escape(_prefix(name)) + "*"):
            if tmp.name.endswith(ends) and tmp.is_file() and not tmp.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed
