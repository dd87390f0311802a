"""Atomic file writes: the one writer behind every file the trainer, the data loaders, the demo
and the reports write.

Public API::

    atomic_file(path, mode="wb") -> context manager yielding the open temporary file
    atomic_save(obj, path)          torch.save, atomically
    atomic_write_text(path, text)   a text file (UTF-8), atomically
    save_figure(fig, path, **kwargs)    a matplotlib figure (``fig.savefig``), atomically
    open_append(path) -> text file  a log appended line by line (metrics.jsonl), never through a
                                    link: a symlink at ``path`` is refused (OSError)
    load_tensors(path) -> Any       torch.load(weights_only=True) on CPU; an unreadable file is
                                    an `UnreadableFileError` saying why, in our words
    UnreadableFileError             (ValueError) a truncated, foreign or code-carrying file
    remove_orphans(directory, names) -> list[Path]   temporary files a killed write left behind

`atomic_file` is the library's (`minimax.atomic`): the content goes to a temporary file in the
same directory, is flushed and fsynced, then ``os.replace``-d onto ``path``; an exception inside
the block deletes the temporary file and leaves the previous ``path`` intact. A symlink at
``path`` is replaced by the new file, never written through. Every file gets the permissions of
a plainly created one (0666 minus the umask, e.g. 0644), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import torch

from minimax.atomic import atomic_file, temporary_prefix

__all__ = [
    "UnreadableFileError",
    "atomic_file",
    "atomic_save",
    "atomic_write_text",
    "load_tensors",
    "open_append",
    "remove_orphans",
    "save_figure",
]


class UnreadableFileError(ValueError):
    """A file that is not a complete ``torch.save`` file of tensors and plain containers;
    ``reason`` says why, in words that never advise turning the protection off."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path, self.reason = Path(path), reason


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a crash leaves the previous file intact).
    A write the file system refuses (a full disk: torch's ``enforce fail at
    inline_container.cc``) is an OSError naming ``path``."""
    try:
        with atomic_file(path, "wb") as f:
            torch.save(obj, f)
    except RuntimeError as error:
        text = str(error)
        if "inline_container" not in text and "PytorchStreamWriter" not in text:
            raise
        raise _write_error(Path(path)) from error


def _write_error(path: Path) -> OSError:
    """The OSError of a refused write: ENOSPC when the file system is (nearly) full."""
    try:
        stat = os.statvfs(path.parent)
        free = stat.f_bavail * stat.f_frsize
    except OSError:
        free = -1
    if 0 <= free < 64 * 2**20:
        return OSError(
            errno.ENOSPC,
            f"No space left on device: {free:,} bytes free; {path} was not written (the "
            "previous file is intact)",
        )
    return OSError(errno.EIO, f"the file system refused the write of {path} (previous file kept)")


def load_tensors(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain
    containers only, never code. A file torch cannot read that way is an `UnreadableFileError`
    saying why (truncated, not a torch file, or holding other objects) without relaying torch's
    advice to turn the protection off."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:
        raise UnreadableFileError(path, _why_unreadable(error)) from None


def _why_unreadable(error: BaseException) -> str:
    text = str(error)
    if "Weights only load failed" in text or "weights_only" in text:
        return (
            "it holds objects other than tensors and plain containers, and loading those can run "
            "code: refused. Use a file written by torch.save of a state_dict or a checkpoint"
        )
    if isinstance(error, EOFError) or "central directory" in text or "PytorchStreamReader" in text:
        return "it is truncated or damaged (not a complete torch.save file)"
    return f"it is not a file written by torch.save ({type(error).__name__})"


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


def open_append(path: str | os.PathLike[str]) -> IO[str]:
    """``path`` opened for appending text (created 0666 minus the umask), never through a link.

    A log is appended line by line rather than rewritten: a line cut short by a crash is
    dropped on resume (the trainer truncates the log to the checkpoint's line count)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(
                error.errno, f"{path} is a symbolic link: refusing to write through it"
            ) from None
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


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
        for tmp in directory.glob(glob.escape(temporary_prefix(name)) + "*"):
            if tmp.name.endswith(ends) and tmp.is_file() and not tmp.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed
