"""Hostile archives and pickles, built here: nested directories + in-tree symlink chains that
escape, links of every kind, fifos / devices, decompression bombs, arrays claiming gigabytes,
and a synthetic archive that vouches for itself. Nothing lands outside the destination."""

from __future__ import annotations

import errno
import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from minimax_problems.cli import main
from minimax_problems.data import archives, errors
from minimax_problems.data import cifar10_files as files
from minimax_problems.data.cifar10 import load_cifar10
from minimax_problems.data.datasets import load_dataset
from minimax_problems.data.synthetic import synthetic_md5, write_synthetic_cifar10

TOP = "cifar-10-batches-py"


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in members:
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def _nothing_outside(tmp_path: Path, dest: Path) -> None:
    """Only the archive, the destination and the 'outside' sentinel directory exist, and the
    sentinel is untouched."""
    outside = tmp_path / "outside"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "original"
    for path in tmp_path.rglob("*"):
        assert path.name not in ("evil", "pwned"), path


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("original")
    return tmp_path


def test_nested_directories_and_symlink_chain_cannot_escape(sandbox: Path) -> None:
    """The shape of the tarfile-filter bypass (CVE-2025-4517 style): a deep directory chain,
    symlinks that each step back up through it, then a file written through the last link."""
    depth = 40
    deep = "/".join(["d" * 50] * depth)  # about 2 kB of path: past what realpath unrolls
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info(f"{TOP}/{deep}", tarfile.DIRTYPE), None)
    ]
    link = f"{TOP}/{deep}/up"
    members.append((_info(link, tarfile.SYMTYPE, "/".join([".."] * (depth + 1))), None))
    members.append((_info(f"{TOP}/escape", tarfile.SYMTYPE, f"{deep}/up/../outside"), None))
    members.append((_info(f"{TOP}/escape/pwned", tarfile.REGTYPE), b"attacker"))
    archive = _tar(sandbox / "chain.tar.gz", members)
    dest = sandbox / "dest"
    with pytest.raises(errors.UnsafeArchiveError, match="a link"):
        archives.safe_extract(archive, dest)
    _nothing_outside(sandbox, dest)
    assert not (dest / TOP).exists()  # refused before anything was written


def test_members_resolve_against_the_real_destination(sandbox: Path) -> None:
    """A symlink already inside the destination (not from the archive) pointing outside: the
    member's real path is outside, so it is refused; a destination reached through a symlink
    still works."""
    dest = sandbox / "dest"
    dest.mkdir()
    (dest / TOP).symlink_to(sandbox / "outside", target_is_directory=True)
    archive = _tar(sandbox / "a.tar.gz", [(_info(f"{TOP}/evil"), b"attacker")])
    with pytest.raises(errors.UnsafeArchiveError, match="outside"):
        archives.safe_extract(archive, dest)
    _nothing_outside(sandbox, dest)
    real = sandbox / "real"
    real.mkdir()
    (sandbox / "alias").symlink_to(real, target_is_directory=True)
    good = _tar(sandbox / "good.tar.gz", [(_info(f"{TOP}/ok.txt"), b"ok")])
    archives.safe_extract(good, sandbox / "alias")
    assert (real / TOP / "ok.txt").read_bytes() == b"ok"


@pytest.mark.parametrize(
    ("kind", "link"),
    [
        (tarfile.SYMTYPE, "ok.txt"),  # in-tree: still refused (CIFAR-10 has no links)
        (tarfile.SYMTYPE, "../../outside/keep.txt"),
        (tarfile.LNKTYPE, f"{TOP}/ok.txt"),
        (tarfile.LNKTYPE, "/etc/passwd"),
        (tarfile.FIFOTYPE, ""),
        (tarfile.CHRTYPE, ""),
        (tarfile.BLKTYPE, ""),
    ],
    ids=[
        "symlink-in-tree",
        "symlink-out",
        "hardlink-in-tree",
        "hardlink-abs",
        "fifo",
        "chr",
        "blk",
    ],
)
def test_links_and_special_members_are_refused(sandbox: Path, kind: bytes, link: str) -> None:
    members = [(_info(f"{TOP}/ok.txt"), b"ok"), (_info(f"{TOP}/evil", kind, link), None)]
    archive = _tar(sandbox / "x.tar.gz", members)
    with pytest.raises(errors.UnsafeArchiveError, match=r"a link|not a regular file"):
        archives.safe_extract(archive, sandbox / "dest")
    _nothing_outside(sandbox, sandbox / "dest")
    assert not (sandbox / "dest" / TOP).exists()


def test_decompression_bomb_is_refused_before_it_expands(sandbox: Path) -> None:
    bomb = b"\0" * 3_000_000  # ~3 kB compressed
    archive = _tar(sandbox / "bomb.tar.gz", [(_info(f"{TOP}/big"), bomb)])
    assert archive.stat().st_size < 20_000
    with pytest.raises(errors.UnsafeArchiveError, match="expands to more than"):
        archives.safe_extract(archive, sandbox / "dest", max_bytes=1_000_000)
    assert not (sandbox / "dest" / TOP).exists()


def test_default_cap_refuses_a_member_claiming_more_than_cifar10(sandbox: Path) -> None:
    """A header claiming 300 MB (no data follows): refused from the header alone."""
    header = _info(f"{TOP}/huge")
    header.size = 300_000_000
    raw = header.tobuf(tarfile.GNU_FORMAT)
    archive = sandbox / "claim.tar.gz"
    archive.write_bytes(gzip.compress(raw))
    assert archives.MAX_EXTRACTED_BYTES < 300_000_000
    with pytest.raises(errors.UnsafeArchiveError, match="expands to more than"):
        archives.safe_extract(archive, sandbox / "dest")


def test_many_members_are_refused(sandbox: Path) -> None:
    members = [(_info(f"{TOP}/f{i}"), b"x") for i in range(archives.MAX_MEMBERS + 1)]
    archive = _tar(sandbox / "many.tar.gz", members)
    with pytest.raises(errors.UnsafeArchiveError, match="members"):
        archives.safe_extract(archive, sandbox / "dest")


def test_the_real_layout_still_extracts(tmp_path: Path) -> None:
    archive = write_synthetic_cifar10(tmp_path, n_train_per_batch=3, n_test=2)
    archives.safe_extract(archive, tmp_path / "dest")
    images, labels = files.read_python_batch(tmp_path / "dest" / TOP / "data_batch_1")
    assert images.shape == (3, 3, 32, 32) and labels.shape == (3,)


# ---------------------------------------------------------------------------------------------
# the restricted unpickler


class _Claim:
    """Pickles as ``_reconstruct(ndarray, shape, dtype)``: numpy allocates ``shape`` at once."""

    def __init__(self, shape: tuple[int, ...], dtype: object = b"b") -> None:
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, self.shape, self.dtype))


class _DirectNdarray:
    def __reduce__(self):
        return (np.ndarray, ((2**33,),))


@pytest.mark.parametrize(
    "payload",
    [
        {"data": _Claim((2**33,))},  # 8.6 GB of int8
        {"data": _Claim((2**20, 2**10), np.dtype("float64"))},  # 8.6 GB of float64
        {"data": _Claim((-1,))},
        {"data": _DirectNdarray()},
    ],
    ids=["8.6GB-int8", "8.6GB-float64", "negative", "ndarray-call"],
)
def test_unpickler_refuses_huge_array_claims(tmp_path: Path, payload: dict) -> None:
    data = pickle.dumps(payload, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        files.restricted_load(io.BytesIO(data))
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        files.read_python_batch(path)


def test_unpickler_still_reads_real_arrays() -> None:
    array = np.arange(files.PIXELS * 2, dtype=np.uint8).reshape(2, files.PIXELS)
    for protocol in (2, 5):
        out = files.restricted_load(io.BytesIO(pickle.dumps({"data": array}, protocol=protocol)))
        assert np.array_equal(out["data"], array)
    assert files.MAX_ARRAY_BYTES >= 10_000 * files.PIXELS  # a real batch fits


def test_unpickler_runs_no_code() -> None:
    evil = pickle.dumps({"x": os.system}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global"):
        files.restricted_load(io.BytesIO(evil))


# ---------------------------------------------------------------------------------------------
# synthetic archives: the checksum comes from the generator


def test_synthetic_checksum_comes_from_the_generator(tmp_path: Path, capsys) -> None:
    reference = write_synthetic_cifar10(tmp_path / "ref", n_train_per_batch=40, n_test=100)
    assert archives.md5sum(reference) == synthetic_md5(n_train_per_batch=40, n_test=100)
    tampered = tmp_path / "data"
    # a valid archive, but not the generator's: before, its own MD5 vouched for it
    write_synthetic_cifar10(tampered, n_train_per_batch=40, n_test=100, seed=1)
    with pytest.raises(errors.ChecksumError):
        load_dataset("synthetic", tampered, progress=False)
    assert not (tampered / TOP).exists()
    argv = [
        "train",
        "--dataset",
        "synthetic",
        "--data-dir",
        str(tampered),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and len(err.strip().splitlines()) == 1


def test_synthetic_data_dir_with_an_escaping_archive(sandbox: Path, capsys) -> None:
    data = sandbox / "data"
    data.mkdir()
    members = [
        (_info(f"{TOP}/l", tarfile.SYMTYPE, "../../outside"), None),
        (_info(f"{TOP}/l/evil"), b"attacker"),
    ]
    _tar(data / "cifar-10-python.tar.gz", members)
    argv = [
        "train",
        "--dataset",
        "synthetic",
        "--data-dir",
        str(data),
        "--out",
        str(sandbox / "run"),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(argv) == 2  # refused by its checksum, before extraction
    _nothing_outside(sandbox, data)
    assert not (data / TOP).exists()


def test_leftovers_of_killed_extractions_and_downloads_are_removed(tmp_path: Path) -> None:
    source = write_synthetic_cifar10(tmp_path / "server", n_train_per_batch=2, n_test=2)
    md5 = archives.md5sum(source)
    root = tmp_path / "data"
    stale = root / f".{TOP}.abc123"
    (stale / TOP).mkdir(parents=True)
    part = root / f".{source.name}.xyz.part"
    part.write_bytes(b"half a download")
    archives.download_archive(
        root, base_url=(tmp_path / "server").as_uri(), md5=md5, progress=False
    )
    assert not part.exists() and archives.md5sum(root / source.name) == md5
    load_cifar10(root, md5=md5, progress=False)
    assert not stale.exists() and (root / TOP).is_dir()


@pytest.mark.parametrize(
    "members",
    [
        [(_info("a" * 300), b"x")],  # one component over NAME_MAX (255 bytes)
        [(_info("/".join(["d" * 200] * 16)), b"x")],  # a path over 3072 bytes
        [(_info("é" * 130), b"x")],  # 260 bytes in UTF-8
    ],
    ids=["300-character-name", "long-path", "multibyte-name"],
)
def test_names_too_long_for_a_file_system_are_refused(sandbox: Path, members) -> None:
    """A 300-character member name let a raw OSError (ENAMETOOLONG) through."""
    archive = _tar(sandbox / "a.tar.gz", members)
    with pytest.raises(errors.UnsafeArchiveError, match="longer than a file system takes"):
        archives.safe_extract(archive, sandbox / "dest")
    assert list((sandbox / "dest").iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "names",
    [("x", "x/"), ("x/", "x"), ("x", "x/y"), ("x/y", "x"), ("./x", "x/y/z")],
    ids=["file-then-dir", "dir-then-file", "file-then-child", "child-then-file", "dotted"],
)
def test_a_file_and_a_directory_of_the_same_name_are_refused(sandbox: Path, names) -> None:
    """A file and a directory of the same name let a raw OSError (EEXIST / ENOTDIR) through,
    after part of the archive was written."""
    members = []
    for name in names:
        kind = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
        members.append((_info(name.rstrip("/"), kind), None if kind == tarfile.DIRTYPE else b"x"))
    archive = _tar(sandbox / "a.tar.gz", members)
    with pytest.raises(errors.UnsafeArchiveError, match="file"):
        archives.safe_extract(archive, sandbox / "dest")
    assert list((sandbox / "dest").iterdir()) == []


def test_a_file_system_refusal_during_extraction_is_a_clear_error(
    sandbox: Path, monkeypatch
) -> None:
    """A full disk (or a read-only one) while extracting: CIFAR10Error naming the archive and
    the file, not a raw OSError."""
    archive = _tar(sandbox / "a.tar.gz", [(_info(f"{TOP}/data_batch_1"), b"x" * 10)])

    def full(path: str, *args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(archives.os, "open", full)
    with pytest.raises(errors.CIFAR10Error, match=r"cannot extract .* No space left on device"):
        archives.safe_extract(archive, sandbox / "dest")
