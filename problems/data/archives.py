"""Archives: MD5 checksums, a retrying verified download, and safe tar extraction.

Public API::

    md5sum(path) -> str
    verify_archive(path, md5) -> None              (raises ChecksumError)
    download_archive(root, format="python", *, base_url=BASE_URL, md5=None, progress=True,
                     retries=3, timeout=60.0) -> Path
    safe_extract(archive, destination, *, max_bytes=MAX_EXTRACTED_BYTES, max_members=64) -> None
                                                   (raises UnsafeArchiveError / CIFAR10Error)
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import IO

from tqdm import tqdm

from ..files import atomic_file, remove_orphans
from .cifar10_files import ARCHIVES, BASE_URL, MD5, check_format
from .errors import ChecksumError, CIFAR10Error, UnsafeArchiveError

__all__ = [
    "MAX_EXTRACTED_BYTES",
    "download_archive",
    "md5sum",
    "safe_extract",
    "verify_archive",
]

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
    remove_orphans(root, [name], suffixes=(".part",))  # left by a killed download
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
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                disable=not progress,
            ) as bar:
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
    """Raise :class:`UnsafeArchiveError` unless ``member`` is a regular file or a directory with
    a relative name free of ``..`` (links of every kind, devices and fifos are refused)."""
    name = member.name
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(
            f"refusing tar member {name!r}: a link to {member.linkname!r} (CIFAR-10 archives "
            "hold only files and directories)"
        )
    if not (member.isreg() or member.isdir()):
        raise UnsafeArchiveError(
            f"refusing tar member {name!r}: not a regular file or directory (device, fifo, ...)"
        )
    if not name or _is_absolute(name) or "\0" in name:
        raise UnsafeArchiveError(f"refusing tar member with an absolute or empty path: {name!r}")
    if ".." in name.split("/"):
        raise UnsafeArchiveError(f"refusing tar member with '..' in its path: {name!r}")
    parts = name.split("/")
    if (
        max(len(p.encode("utf-8", "surrogateescape")) for p in parts) > _NAME_MAX
        or len(name.encode("utf-8", "surrogateescape")) > _PATH_MAX
    ):
        raise UnsafeArchiveError(
            f"refusing tar member {name[:60]!r}...: a name longer than a file system takes "
            f"({_NAME_MAX} bytes per component, {_PATH_MAX} in all)"
        )


#: the longest file name component and path most file systems accept (Linux's NAME_MAX, and
#: PATH_MAX = 4096 less a margin for the destination's own path)
_NAME_MAX, _PATH_MAX = 255, 3072


def _key(name: str) -> str:
    """A member's path with empty and ``.`` components dropped (``a//./b/`` → ``a/b``)."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _check_kinds(member: tarfile.TarInfo, kinds: dict[str, str]) -> None:
    """Refuse a member whose path is also a file's and a directory's in this archive (a file
    ``a`` beside ``a/`` or ``a/b``): extracting it would fail half-way with a raw OSError."""
    key, kind = _key(member.name), "directory" if member.isdir() else "file"
    parents = key.split("/")[:-1]
    for i in range(1, len(parents) + 1):
        if kinds.get("/".join(parents[:i])) == "file":
            raise UnsafeArchiveError(
                f"refusing tar member {member.name!r}: {'/'.join(parents[:i])!r} is a file in "
                "this archive, not a directory"
            )
    if kinds.setdefault(key, kind) != kind:
        raise UnsafeArchiveError(
            f"refusing tar member {member.name!r}: the archive holds both a file and a directory "
            "of that name"
        )
    for parent in ("/".join(parents[:i]) for i in range(1, len(parents) + 1)):
        kinds.setdefault(parent, "directory")


def _members(tar: tarfile.TarFile, max_bytes: int, max_members: int) -> list[tarfile.TarInfo]:
    """Every member, checked as it is read: stops at the first unsafe one, or as soon as the
    declared sizes pass ``max_bytes`` (before anything is decompressed further)."""
    members, total = [], 0
    kinds: dict[str, str] = {}  # path → "file" / "directory", over the members read so far
    while (member := tar.next()) is not None:
        _check_member(member)
        _check_kinds(member, kinds)
        total += member.size
        members.append(member)
        if total > max_bytes or len(members) > max_members:
            raise UnsafeArchiveError(
                f"refusing archive: it expands to more than {max_bytes:,} bytes or "
                f"{max_members:,} members (the CIFAR-10 archives are smaller)"
            )
    return members


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _target(root: str, name: str) -> str:
    """The real path ``name`` extracts to under the real directory ``root``; each existing
    parent is resolved (an in-tree symlink would show here) and must stay inside ``root``."""
    path = os.path.join(root, *[p for p in name.split("/") if p not in ("", ".")])
    parent = os.path.realpath(os.path.dirname(path))
    if not _inside(root, parent) or not _inside(root, path):
        raise UnsafeArchiveError(f"refusing tar member {name!r}: it resolves outside {root}")
    return os.path.join(parent, os.path.basename(path)) if path != root else root


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: str) -> None:
    """Create one directory or regular file (never following a link, never overwriting one)."""
    path = _target(root, member.name)
    if member.isdir():
        os.makedirs(path, mode=0o755, exist_ok=True)
        if os.path.islink(path) or not _inside(root, os.path.realpath(path)):
            raise UnsafeArchiveError(f"refusing tar member {member.name!r}: a link in the way")
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    _target(root, member.name)  # the parents now exist: resolve them again
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - regular files always have data
        raise UnsafeArchiveError(f"refusing tar member {member.name!r}: no data")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    with source, os.fdopen(os.open(path, flags, 0o644), "wb") as out:
        written = 0
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            written += len(chunk)
            if written > member.size:  # pragma: no cover - tarfile reads exactly .size
                raise UnsafeArchiveError(f"tar member {member.name!r} is longer than declared")
            out.write(chunk)


#: the official archives expand to about 186 MB (6 batches of 10 000 × 3 072 pixel bytes plus
#: labels and names); the cap leaves a margin and stops decompression bombs
MAX_EXTRACTED_BYTES = 200_000_000
MAX_MEMBERS = 64


def safe_extract(
    archive: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> None:
    """Extract a .tar(.gz) into ``destination`` after checking every member.

    Only regular files and directories are extracted; links (symbolic and hard), devices and
    fifos, absolute paths and ``..`` components are refused, as is an archive whose members
    declare more than ``max_bytes`` bytes in all or number more than ``max_members``
    (:class:`UnsafeArchiveError`, raised before anything is written). Every member is resolved
    against the *real* path of ``destination`` (``os.path.realpath``), its parents re-resolved
    on disk before it is written, and files are opened with ``O_NOFOLLOW``: nothing lands
    outside ``destination``. tarfile's extraction filters are not relied on. A truncated or
    damaged archive raises :class:`CIFAR10Error`; extract into a fresh directory and delete it
    on error (a damaged archive can leave part of it behind).
    """
    Path(destination).mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(destination)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in _members(tar, max_bytes, max_members):
                _write_member(tar, member, root)
    except UnsafeArchiveError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise CIFAR10Error(
            f"cannot extract {archive}: {error}. The archive is corrupt or truncated: delete it "
            "and re-download."
        ) from error
    except OSError as error:  # the file system refused a write (full, read-only, a name ...)
        where = f" ({error.filename})" if error.filename else ""
        raise CIFAR10Error(
            f"cannot extract {archive} into {destination}: {error.strerror or error}{where}"
        ) from error
