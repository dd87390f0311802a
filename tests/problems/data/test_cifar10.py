"""CIFAR-10 data: official formats (on synthetic archives), checksums, missing and corrupt
files, the restricted unpickler, and the train / validation splits."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from minimax_problems.data import archives, cifar10, errors, splits
from minimax_problems.data import cifar10_files as files
from minimax_problems.data.synthetic import write_synthetic_cifar10

N_TRAIN, N_TEST = 12, 7  # per training batch / test batch


def _read_expected(archive: Path, fmt: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Decode the archive independently of the module (trusted pickle: we wrote it)."""
    top = files.DIRECTORIES[fmt]
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    data, labels = [], []
    with tarfile.open(archive) as tar:
        for name in names:
            if fmt == "python":
                f = tar.extractfile(f"{top}/{name}")
                assert f is not None
                batch = pickle.load(f, encoding="latin1")
                data.append(batch["data"])
                labels.append(np.asarray(batch["labels"]))
            else:
                f = tar.extractfile(f"{top}/{name}.bin")
                assert f is not None
                rec = np.frombuffer(f.read(), dtype=np.uint8).reshape(-1, 3073)
                data.append(rec[:, 1:])
                labels.append(rec[:, 0].astype(np.int64))
    return np.concatenate(data), np.concatenate(labels)


@pytest.fixture(params=["python", "binary"])
def synthetic(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, str, str]:
    """(root, archive, md5, format)."""
    fmt = request.param
    archive = write_synthetic_cifar10(
        tmp_path / "data", n_train_per_batch=N_TRAIN, n_test=N_TEST, format=fmt, seed=3
    )
    return tmp_path / "data", archive, archives.md5sum(archive), fmt


# ---------------------------------------------------------------------------------------------
# formats


def test_synthetic_archive_layout(synthetic: tuple[Path, Path, str, str]) -> None:
    _, archive, _, fmt = synthetic
    assert archive.name == files.ARCHIVES[fmt]
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    top = files.DIRECTORIES[fmt]
    suffix = ".bin" if fmt == "binary" else ""
    meta = "batches.meta.txt" if fmt == "binary" else "batches.meta"
    expected = {f"{top}/data_batch_{i}{suffix}" for i in range(1, 6)}
    expected |= {f"{top}/test_batch{suffix}", f"{top}/{meta}"}
    assert expected <= names


@pytest.mark.parametrize("train", [True, False])
def test_load_matches_written_pixels(synthetic: tuple[Path, Path, str, str], train: bool) -> None:
    root, archive, md5, fmt = synthetic
    images, labels, classes = cifar10.load_cifar10(root, train=train, md5=md5, format=fmt)
    n = 5 * N_TRAIN if train else N_TEST
    assert images.shape == (n, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert classes == files.CIFAR10_CLASSES
    data, expected_labels = _read_expected(archive, fmt, train)
    # row-major CHW: the first 1024 bytes are the red plane, row by row
    np.testing.assert_array_equal(images.numpy().reshape(n, 3072), data)
    np.testing.assert_array_equal(images[:, 0].numpy().reshape(n, 1024), data[:, :1024])
    np.testing.assert_array_equal(labels.numpy(), expected_labels)
    assert (root / files.DIRECTORIES[fmt]).is_dir()


def test_both_formats_hold_the_same_images(tmp_path: Path) -> None:
    loaded = []
    for fmt in ("python", "binary"):
        archive = write_synthetic_cifar10(tmp_path / fmt, format=fmt, n_train_per_batch=4)
        loaded.append(cifar10.load_cifar10(tmp_path / fmt, md5=archives.md5sum(archive)))
    assert torch.equal(loaded[0][0], loaded[1][0])
    assert torch.equal(loaded[0][1], loaded[1][1])


def test_synthetic_classes_are_separable(tmp_path: Path) -> None:
    archive = write_synthetic_cifar10(tmp_path, n_train_per_batch=40)
    x, y, _ = cifar10.load_cifar10(tmp_path, md5=archives.md5sum(archive))
    means = x.float().mean(dim=(2, 3))  # [N, 3] mean colour per image
    centroids = torch.stack([means[y == k].mean(0) for k in range(10)])
    nearest = torch.cdist(means, centroids).argmin(1)
    assert (nearest == y).float().mean() > 0.9
    assert torch.bincount(y, minlength=10).min() == 20  # balanced


def test_auto_format_reads_extracted_directory_without_archive(
    synthetic: tuple[Path, Path, str, str],
) -> None:
    root, archive, md5, _ = synthetic
    first = cifar10.load_cifar10(root, md5=md5)
    archive.unlink()
    second = cifar10.load_cifar10(root)  # the extracted directory is found, no checksum needed
    assert torch.equal(first[0], second[0]) and first[2] == second[2]


def test_synthetic_archive_is_deterministic(tmp_path: Path) -> None:
    a = write_synthetic_cifar10(tmp_path / "a", seed=5)
    b = write_synthetic_cifar10(tmp_path / "b", seed=5)
    d = write_synthetic_cifar10(tmp_path / "d", seed=6)
    assert archives.md5sum(a) == archives.md5sum(b) != archives.md5sum(d)


# ---------------------------------------------------------------------------------------------
# checksums, missing and corrupt files


def test_md5sum_and_verify(synthetic: tuple[Path, Path, str, str]) -> None:
    _, archive, md5, _ = synthetic
    assert md5 == hashlib.md5(archive.read_bytes()).hexdigest()
    archives.verify_archive(archive, md5)
    archives.verify_archive(archive, md5.upper())
    with pytest.raises(errors.ChecksumError, match="checksum mismatch"):
        archives.verify_archive(archive, "0" * 32)


def test_published_checksum_is_the_default(synthetic: tuple[Path, Path, str, str]) -> None:
    root, _, _, fmt = synthetic
    assert files.MD5 == {
        "python": "c58f30108f718f92721af3b95e74349a",
        "binary": "c32a1d4ab5d03f1284b67883e8d87530",
    }
    with pytest.raises(errors.ChecksumError, match=files.MD5[fmt]):
        cifar10.load_cifar10(root)  # a synthetic archive is not the published one
    assert not (root / files.DIRECTORIES[fmt]).exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_archive_is_refused(synthetic: tuple[Path, Path, str, str], damage: str) -> None:
    root, archive, md5, fmt = synthetic
    raw = bytearray(archive.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        raw[len(raw) // 3] ^= 0x55
    else:
        raw = raw[: len(raw) // 2]
    archive.write_bytes(bytes(raw))
    with pytest.raises(errors.ChecksumError, match="delete it and re-download"):
        cifar10.load_cifar10(root, md5=md5)
    assert not (root / files.DIRECTORIES[fmt]).exists()


def test_truncated_archive_extraction_error(synthetic: tuple[Path, Path, str, str]) -> None:
    _, archive, _, _ = synthetic
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(errors.CIFAR10Error, match="corrupt or truncated"):
        archives.safe_extract(archive, archive.parent / "out")


def test_missing_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(errors.CIFAR10NotFoundError) as info:
        cifar10.load_cifar10(tmp_path / "nowhere")
    message = str(info.value)
    assert "download=True" in message and "--download" in message
    assert "cifar-10-python.tar.gz" in message and "nowhere" in message
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(errors.CIFAR10NotFoundError, match=r"cifar-10-binary\.tar\.gz"):
        cifar10.load_cifar10(tmp_path, format="binary")


def test_truncated_batch_files(synthetic: tuple[Path, Path, str, str]) -> None:
    root, _, md5, fmt = synthetic
    cifar10.load_cifar10(root, md5=md5)
    batch = root / files.DIRECTORIES[fmt] / ("data_batch_2" + (".bin" if fmt == "binary" else ""))
    batch.write_bytes(batch.read_bytes()[:-5])
    expected = "not a positive multiple of 3073" if fmt == "binary" else "corrupt or truncated"
    with pytest.raises(errors.CIFAR10Error, match=expected) as info:
        cifar10.load_cifar10(root)
    assert "data_batch_2" in str(info.value)
    cifar10.load_cifar10(root, train=False)  # the test batch is intact


def test_wrong_shaped_python_batch(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, 2))
    with pytest.raises(errors.CIFAR10Error, match=r"expected uint8 \[n, 3072\]"):
        files.read_python_batch(path)
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, 2))
    with pytest.raises(errors.CIFAR10Error, match="1 labels for 2 images"):
        files.read_python_batch(path)


# ---------------------------------------------------------------------------------------------
# restricted unpickler


class _SystemPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


class _EvalPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize(
    ("payload", "refused"), [(_SystemPayload, "system"), (_EvalPayload, "eval")]
)
def test_restricted_unpickler_refuses_code(tmp_path: Path, payload: type, refused: str) -> None:
    # the payload is live: an ordinary unpickler runs it
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(payload(control), protocol=2))
    assert control.exists()

    marker = tmp_path / "marker"
    evil = pickle.dumps({"data": payload(marker), "labels": [0]}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=f"refusing to unpickle global .*{refused}"):
        files.restricted_load(io.BytesIO(evil))
    assert not marker.exists()

    # and through the dataset loader, in place of a real batch
    root = tmp_path / "root"
    archive = write_synthetic_cifar10(root, n_train_per_batch=2, n_test=2)
    cifar10.load_cifar10(root, md5=archives.md5sum(archive))
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(evil)
    with pytest.raises(pickle.UnpicklingError, match=refused):
        cifar10.load_cifar10(root)
    assert not marker.exists()


def test_restricted_unpickler_builds_arrays_and_containers() -> None:
    value = {
        "data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "f": np.float32(1.5),
        "labels": [1, 2, 3],
        b"raw": b"\x00\xff",
        "t": (1.0, None, True, "x"),
    }
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        out = files.restricted_load(io.BytesIO(pickle.dumps(value, protocol=protocol)))
        np.testing.assert_array_equal(out["data"], value["data"])
        assert out["data"].dtype == np.uint8 and out["f"] == np.float32(1.5)
        assert out["labels"] == [1, 2, 3] and out[b"raw"] == b"\x00\xff" and out["t"] == value["t"]


def test_restricted_unpickler_accepts_legacy_numpy_module_path() -> None:
    """The real batches were pickled by numpy 1.x: ``numpy.core.multiarray._reconstruct``."""
    raw = pickle.dumps({"data": np.arange(6, dtype=np.uint8)}, protocol=2)
    legacy = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    out = files.restricted_load(io.BytesIO(legacy))
    np.testing.assert_array_equal(out["data"], np.arange(6, dtype=np.uint8))


def test_restricted_unpickler_refuses_other_numpy_globals() -> None:
    raw = pickle.dumps(np.load, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="numpy"):
        files.restricted_load(io.BytesIO(raw))


# ---------------------------------------------------------------------------------------------
# splits


def test_validation_split() -> None:
    images = torch.arange(100).reshape(100, 1, 1, 1)
    labels = torch.arange(100)
    _, ytr, xva, yva = splits.train_val_split(images, labels, 20, seed=0)
    assert len(ytr) == 80 and len(yva) == 20
    assert set(ytr.tolist()).isdisjoint(yva.tolist())
    assert sorted(ytr.tolist() + yva.tolist()) == list(range(100))
    assert torch.equal(xva.flatten(), yva)  # images follow their labels
    again = splits.train_val_split(images, labels, 20, seed=0)
    assert torch.equal(again[3], yva)
    assert not torch.equal(splits.train_val_split(images, labels, 20, seed=1)[3], yva)
    assert len(splits.train_val_split(images, labels, 0.25)[3]) == 25
    assert len(splits.train_val_split(images, labels, 0)[3]) == 0
    with pytest.raises(ValueError):
        splits.train_val_split(images, labels, 101)


def test_load_splits(synthetic: tuple[Path, Path, str, str]) -> None:
    root, _, md5, _ = synthetic
    s = cifar10.load_cifar10_splits(root, val_size=10, seed=0, md5=md5)
    assert s.train_images.shape == (5 * N_TRAIN - 10, 3, 32, 32)
    assert s.val_images.shape == (10, 3, 32, 32) and s.test_labels.shape == (N_TEST,)
    full, _, _ = cifar10.load_cifar10(root)
    rows = {bytes(img.flatten().tolist()) for img in full}
    assert {bytes(img.flatten().tolist()) for img in s.val_images} <= rows
    assert s.classes == files.CIFAR10_CLASSES
