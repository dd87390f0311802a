"""CIFAR-10 data: official formats (on synthetic archives), checksums, safe extraction, the
restricted unpickler, download from a local HTTP server, augmentation and splits."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import pickle
import tarfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from problems import cifar10 as c

N_TRAIN, N_TEST = 12, 7  # per training batch / test batch


def _read_expected(archive: Path, fmt: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Decode the archive independently of the module (trusted pickle: we wrote it)."""
    top = c.DIRECTORIES[fmt]
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
    archive = c.write_synthetic_cifar10(
        tmp_path / "data", n_train_per_batch=N_TRAIN, n_test=N_TEST, format=fmt, seed=3
    )
    return tmp_path / "data", archive, c.md5sum(archive), fmt


# ---------------------------------------------------------------------------------------------
# formats


def test_synthetic_archive_layout(synthetic: tuple[Path, Path, str, str]) -> None:
    _, archive, _, fmt = synthetic
    assert archive.name == c.ARCHIVES[fmt]
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    top = c.DIRECTORIES[fmt]
    suffix = ".bin" if fmt == "binary" else ""
    meta = "batches.meta.txt" if fmt == "binary" else "batches.meta"
    expected = {f"{top}/data_batch_{i}{suffix}" for i in range(1, 6)}
    expected |= {f"{top}/test_batch{suffix}", f"{top}/{meta}"}
    assert expected <= names


@pytest.mark.parametrize("train", [True, False])
def test_load_matches_written_pixels(synthetic: tuple[Path, Path, str, str], train: bool) -> None:
    root, archive, md5, fmt = synthetic
    images, labels, classes = c.load_cifar10(root, train=train, md5=md5, format=fmt)
    n = 5 * N_TRAIN if train else N_TEST
    assert images.shape == (n, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert classes == c.CIFAR10_CLASSES
    data, expected_labels = _read_expected(archive, fmt, train)
    # row-major CHW: the first 1024 bytes are the red plane, row by row
    np.testing.assert_array_equal(images.numpy().reshape(n, 3072), data)
    np.testing.assert_array_equal(images[:, 0].numpy().reshape(n, 1024), data[:, :1024])
    np.testing.assert_array_equal(labels.numpy(), expected_labels)
    assert (root / c.DIRECTORIES[fmt]).is_dir()


def test_both_formats_hold_the_same_images(tmp_path: Path) -> None:
    loaded = []
    for fmt in ("python", "binary"):
        archive = c.write_synthetic_cifar10(tmp_path / fmt, format=fmt, n_train_per_batch=4)
        loaded.append(c.load_cifar10(tmp_path / fmt, md5=c.md5sum(archive)))
    assert torch.equal(loaded[0][0], loaded[1][0])
    assert torch.equal(loaded[0][1], loaded[1][1])


def test_synthetic_classes_are_separable(tmp_path: Path) -> None:
    archive = c.write_synthetic_cifar10(tmp_path, n_train_per_batch=40)
    x, y, _ = c.load_cifar10(tmp_path, md5=c.md5sum(archive))
    means = x.float().mean(dim=(2, 3))  # [N, 3] mean colour per image
    centroids = torch.stack([means[y == k].mean(0) for k in range(10)])
    nearest = torch.cdist(means, centroids).argmin(1)
    assert (nearest == y).float().mean() > 0.9
    assert torch.bincount(y, minlength=10).min() == 20  # balanced


def test_auto_format_reads_extracted_directory_without_archive(
    synthetic: tuple[Path, Path, str, str],
) -> None:
    root, archive, md5, _ = synthetic
    first = c.load_cifar10(root, md5=md5)
    archive.unlink()
    second = c.load_cifar10(root)  # the extracted directory is found, no checksum needed
    assert torch.equal(first[0], second[0]) and first[2] == second[2]


def test_synthetic_archive_is_deterministic(tmp_path: Path) -> None:
    a = c.write_synthetic_cifar10(tmp_path / "a", seed=5)
    b = c.write_synthetic_cifar10(tmp_path / "b", seed=5)
    d = c.write_synthetic_cifar10(tmp_path / "d", seed=6)
    assert c.md5sum(a) == c.md5sum(b) != c.md5sum(d)


# ---------------------------------------------------------------------------------------------
# checksums, missing and corrupt files


def test_md5sum_and_verify(synthetic: tuple[Path, Path, str, str]) -> None:
    _, archive, md5, _ = synthetic
    assert md5 == hashlib.md5(archive.read_bytes()).hexdigest()
    c.verify_archive(archive, md5)
    c.verify_archive(archive, md5.upper())
    with pytest.raises(c.ChecksumError, match="checksum mismatch"):
        c.verify_archive(archive, "0" * 32)


def test_published_checksum_is_the_default(synthetic: tuple[Path, Path, str, str]) -> None:
    root, _, _, fmt = synthetic
    assert c.MD5 == {
        "python": "c58f30108f718f92721af3b95e74349a",
        "binary": "c32a1d4ab5d03f1284b67883e8d87530",
    }
    with pytest.raises(c.ChecksumError, match=c.MD5[fmt]):
        c.load_cifar10(root)  # a synthetic archive is not the published one
    assert not (root / c.DIRECTORIES[fmt]).exists()


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
    with pytest.raises(c.ChecksumError, match="delete it and re-download"):
        c.load_cifar10(root, md5=md5)
    assert not (root / c.DIRECTORIES[fmt]).exists()


def test_truncated_archive_extraction_error(synthetic: tuple[Path, Path, str, str]) -> None:
    _, archive, _, _ = synthetic
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(c.CIFAR10Error, match="corrupt or truncated"):
        c.safe_extract(archive, archive.parent / "out")


def test_missing_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(c.CIFAR10NotFoundError) as info:
        c.load_cifar10(tmp_path / "nowhere")
    message = str(info.value)
    assert "download=True" in message and "--download" in message
    assert "cifar-10-python.tar.gz" in message and "nowhere" in message
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(c.CIFAR10NotFoundError, match=r"cifar-10-binary\.tar\.gz"):
        c.load_cifar10(tmp_path, format="binary")


def test_truncated_batch_files(synthetic: tuple[Path, Path, str, str]) -> None:
    root, _, md5, fmt = synthetic
    c.load_cifar10(root, md5=md5)
    batch = root / c.DIRECTORIES[fmt] / ("data_batch_2" + (".bin" if fmt == "binary" else ""))
    batch.write_bytes(batch.read_bytes()[:-5])
    expected = "not a positive multiple of 3073" if fmt == "binary" else "corrupt or truncated"
    with pytest.raises(c.CIFAR10Error, match=expected) as info:
        c.load_cifar10(root)
    assert "data_batch_2" in str(info.value)
    c.load_cifar10(root, train=False)  # the test batch is intact


def test_wrong_shaped_python_batch(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, 2))
    with pytest.raises(c.CIFAR10Error, match=r"expected uint8 \[n, 3072\]"):
        c.read_python_batch(path)
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, 2))
    with pytest.raises(c.CIFAR10Error, match="1 labels for 2 images"):
        c.read_python_batch(path)


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
        c.restricted_load(io.BytesIO(evil))
    assert not marker.exists()

    # and through the dataset loader, in place of a real batch
    root = tmp_path / "root"
    archive = c.write_synthetic_cifar10(root, n_train_per_batch=2, n_test=2)
    c.load_cifar10(root, md5=c.md5sum(archive))
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(evil)
    with pytest.raises(pickle.UnpicklingError, match=refused):
        c.load_cifar10(root)
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
        out = c.restricted_load(io.BytesIO(pickle.dumps(value, protocol=protocol)))
        np.testing.assert_array_equal(out["data"], value["data"])
        assert out["data"].dtype == np.uint8 and out["f"] == np.float32(1.5)
        assert out["labels"] == [1, 2, 3] and out[b"raw"] == b"\x00\xff" and out["t"] == value["t"]


def test_restricted_unpickler_accepts_legacy_numpy_module_path() -> None:
    """The real batches were pickled by numpy 1.x: ``numpy.core.multiarray._reconstruct``."""
    raw = pickle.dumps({"data": np.arange(6, dtype=np.uint8)}, protocol=2)
    legacy = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    out = c.restricted_load(io.BytesIO(legacy))
    np.testing.assert_array_equal(out["data"], np.arange(6, dtype=np.uint8))


def test_restricted_unpickler_refuses_other_numpy_globals() -> None:
    raw = pickle.dumps(np.load, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="numpy"):
        c.restricted_load(io.BytesIO(raw))


# ---------------------------------------------------------------------------------------------
# safe extraction


def _tar_with(path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/ok.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
        add(tar)
    return path


def _file(name: str) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))

    return add


def _link(name: str, target: str, kind: bytes) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        tar.addfile(info)

    return add


def _device(name: str) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = 1, 3
        tar.addfile(info)

    return add


@pytest.mark.parametrize(
    ("add", "message"),
    [
        (_file("../evil"), "'..'"),
        (_file("cifar-10-batches-py/../../evil"), "'..'"),
        (_file("/tmp/minimax-test-absolute-evil"), "absolute"),
        (_link("cifar-10-batches-py/etc", "/etc", tarfile.SYMTYPE), "absolute"),
        (_link("cifar-10-batches-py/up", "../../evil", tarfile.SYMTYPE), "outside"),
        (_link("cifar-10-batches-py/hard", "../evil", tarfile.LNKTYPE), "outside"),
        (_device("cifar-10-batches-py/null"), "not a regular file"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-etc", "symlink-up", "hardlink", "dev"],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, add: Callable[[tarfile.TarFile], None], message: str
) -> None:
    archive = _tar_with(tmp_path / "bad.tar.gz", add)
    dest = tmp_path / "a" / "b"
    with pytest.raises(c.UnsafeArchiveError, match=message):
        c.safe_extract(archive, dest)
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/minimax-test-absolute-evil").exists()
    assert not (dest / "cifar-10-batches-py").exists()  # nothing extracted at all


def test_in_tree_link_is_allowed(tmp_path: Path) -> None:
    add = _link("cifar-10-batches-py/alias.txt", "ok.txt", tarfile.SYMTYPE)
    archive = _tar_with(tmp_path / "good.tar.gz", add)
    c.safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "cifar-10-batches-py" / "alias.txt").read_bytes() == b"ok"


def test_loader_refuses_unsafe_archive(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    archive = _tar_with(root / "cifar-10-python.tar.gz", _file("../evil"))
    with pytest.raises(c.UnsafeArchiveError):
        c.load_cifar10(root, md5=c.md5sum(archive))
    assert not (tmp_path / "evil").exists()
    assert not (root / "cifar-10-batches-py").exists()


# ---------------------------------------------------------------------------------------------
# download from a local server


class _Server:
    """Serves ``files`` (name -> list of payloads, served in turn; the last one repeats)."""

    def __init__(self) -> None:
        self.files: dict[str, list[bytes]] = {}
        self.requests: list[str] = []
        self.short_responses = 0  # this many first responses claim more bytes than they send
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(self.path)
                payloads = server.files.get(name)
                if not payloads:
                    self.send_error(404)
                    return
                body = payloads.pop(0) if len(payloads) > 1 else payloads[0]
                claimed = len(body)
                if server.short_responses > 0:
                    server.short_responses -= 1
                    claimed, body = len(body), body[: len(body) // 2]
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(claimed))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/~kriz/"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        thread.join(timeout=5)


def _no_partial_files(root: Path) -> bool:
    return not any(p.name.endswith(".part") for p in root.iterdir())


def test_download_and_load(
    tmp_path: Path, server: _Server, capsys: pytest.CaptureFixture[str]
) -> None:
    source = c.write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=3, n_test=3)
    server.files["cifar-10-python.tar.gz"] = [source.read_bytes()]
    md5 = c.md5sum(source)
    root = tmp_path / "new" / "data"
    images, labels, classes = c.load_cifar10(root, download=True, md5=md5, base_url=server.url)
    assert images.shape == (15, 3, 32, 32) and labels.shape == (15,)
    assert classes == c.CIFAR10_CLASSES
    assert server.requests == ["/~kriz/cifar-10-python.tar.gz"]
    assert c.md5sum(root / "cifar-10-python.tar.gz") == md5
    assert _no_partial_files(root)
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and "100%" in err  # the progress bar
    # a second call finds the data and does not download again
    c.load_cifar10(root, train=False, download=True, md5=md5, base_url=server.url)
    assert len(server.requests) == 1


def test_download_binary_format(tmp_path: Path, server: _Server) -> None:
    source = c.write_synthetic_cifar10(tmp_path / "src", format="binary", n_train_per_batch=2)
    server.files["cifar-10-binary.tar.gz"] = [source.read_bytes()]
    path = c.download_archive(
        tmp_path / "root", "binary", base_url=server.url, md5=c.md5sum(source), progress=False
    )
    assert path == tmp_path / "root" / "cifar-10-binary.tar.gz"
    assert path.read_bytes() == source.read_bytes()


def test_download_with_bad_checksum_is_refused(tmp_path: Path, server: _Server) -> None:
    source = c.write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=2, n_test=2)
    server.files["cifar-10-python.tar.gz"] = [source.read_bytes()]
    root = tmp_path / "root"
    with pytest.raises(c.ChecksumError, match=r"download .* is corrupt") as info:
        c.load_cifar10(root, download=True, base_url=server.url, progress=False)  # published md5
    assert c.MD5["python"] in str(info.value)
    assert len(server.requests) == 3  # retried
    assert not (root / "cifar-10-python.tar.gz").exists()
    assert _no_partial_files(root)
    assert not (root / "cifar-10-batches-py").exists()


def test_download_retries_after_a_corrupt_transfer(tmp_path: Path, server: _Server) -> None:
    source = c.write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=2, n_test=2)
    good = source.read_bytes()
    server.files["cifar-10-python.tar.gz"] = [good[: len(good) // 2], good]
    path = c.download_archive(
        tmp_path / "root", base_url=server.url, md5=c.md5sum(source), progress=False
    )
    assert len(server.requests) == 2
    assert path.read_bytes() == good
    assert _no_partial_files(tmp_path / "root")


def test_download_retries_after_an_interrupted_transfer(tmp_path: Path, server: _Server) -> None:
    source = c.write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=2, n_test=2)
    server.files["cifar-10-python.tar.gz"] = [source.read_bytes()]
    server.short_responses = 1
    path = c.download_archive(
        tmp_path / "root", base_url=server.url, md5=c.md5sum(source), progress=False
    )
    assert len(server.requests) == 2
    assert c.md5sum(path) == c.md5sum(source)
    assert _no_partial_files(tmp_path / "root")


def test_download_http_error(tmp_path: Path, server: _Server) -> None:
    with pytest.raises(c.CIFAR10Error, match=r"could not download .*404"):
        c.download_archive(tmp_path, base_url=server.url, progress=False)
    assert _no_partial_files(tmp_path)


# ---------------------------------------------------------------------------------------------
# augmentation, batching, splits


def test_to_float() -> None:
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(c.to_float(x), torch.tensor([0.0, 0.2, 1.0]))
    assert c.to_float(x).dtype == torch.float32
    y = torch.rand(3)
    assert c.to_float(y) is y


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_deterministic_under_seed(dtype: torch.dtype) -> None:
    x = torch.randint(0, 256, (16, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    x = x.to(torch.uint8) if dtype == torch.uint8 else x.float() / 255
    a = c.augment(x, generator=torch.Generator().manual_seed(7))
    b = c.augment(x, generator=torch.Generator().manual_seed(7))
    d = c.augment(x, generator=torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, d)


def test_flip_on_hand_made_tensor() -> None:
    x = torch.arange(2 * 1 * 2 * 3).reshape(2, 1, 2, 3)
    flipped = c.random_flip(x, p=1.0)
    assert flipped[0, 0].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert torch.equal(c.random_flip(x, p=0.0), x)
    # per example: about half of a large batch is flipped
    many = torch.arange(4).repeat(1000, 1, 1, 1).reshape(1000, 1, 1, 4)
    out = c.random_flip(many, generator=torch.Generator().manual_seed(0))
    n_flipped = int((out[:, 0, 0, 0] == 3).sum())
    assert 400 < n_flipped < 600
    assert all(row in ([0, 1, 2, 3], [3, 2, 1, 0]) for row in out[:, 0, 0].tolist())


def test_crop_on_hand_made_tensor() -> None:
    """Every output is one of the (2p+1)^2 windows of the zero-padded image, all occur."""
    p, h, w = 2, 4, 5
    image = torch.arange(1, 1 + 2 * h * w, dtype=torch.float32).reshape(1, 2, h, w)
    x = image.repeat(400, 1, 1, 1)
    out = c.random_crop(x, padding=p, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(image[0], (p, p, p, p))
    windows = {
        (dy, dx): padded[:, dy : dy + h, dx : dx + w]
        for dy in range(2 * p + 1)
        for dx in range(2 * p + 1)
    }
    seen = set()
    for o in out:
        match = [k for k, win in windows.items() if torch.equal(o, win)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(windows)  # uniform offsets in [0, 2p]: all 25 appear in 400 draws
    # channels move together; zero padding; the centre window is the identity
    assert torch.equal(windows[(p, p)], image[0])
    assert torch.equal(windows[(0, 0)][:, :p, :], torch.zeros(2, p, w))
    assert torch.equal(c.random_crop(x, padding=0), x)


def test_batches_cover_the_data_once(tmp_path: Path) -> None:
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1).expand(10, 3, 4, 4)
    labels = torch.arange(10)
    seen = []
    for xb, yb in c.batches(images, labels, 4, shuffle=True, generator=torch.Generator()):
        assert xb.dtype == torch.float32 and xb.shape[1:] == (3, 4, 4)
        assert torch.allclose(xb[:, 0, 0, 0] * 255, yb.float())  # labels stay with images
        seen += yb.tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    sizes = [len(y) for _, y in c.batches(images, labels, 4, drop_last=True)]
    assert sizes == [4, 4]
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    run1 = list(c.batches(images, labels, 3, shuffle=True, generator=g1, augment=True))
    run2 = list(c.batches(images, labels, 3, shuffle=True, generator=g2, augment=True))
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(run1, run2, strict=True)
    )
    assert all(0 <= float(x.min()) and float(x.max()) <= 1 for x, _ in run1)


def test_validation_split() -> None:
    images = torch.arange(100).reshape(100, 1, 1, 1)
    labels = torch.arange(100)
    _, ytr, xva, yva = c.train_val_split(images, labels, 20, seed=0)
    assert len(ytr) == 80 and len(yva) == 20
    assert set(ytr.tolist()).isdisjoint(yva.tolist())
    assert sorted(ytr.tolist() + yva.tolist()) == list(range(100))
    assert torch.equal(xva.flatten(), yva)  # images follow their labels
    again = c.train_val_split(images, labels, 20, seed=0)
    assert torch.equal(again[3], yva)
    assert not torch.equal(c.train_val_split(images, labels, 20, seed=1)[3], yva)
    assert len(c.train_val_split(images, labels, 0.25)[3]) == 25
    assert len(c.train_val_split(images, labels, 0)[3]) == 0
    with pytest.raises(ValueError):
        c.train_val_split(images, labels, 101)


def test_load_splits(synthetic: tuple[Path, Path, str, str]) -> None:
    root, _, md5, _ = synthetic
    s = c.load_cifar10_splits(root, val_size=10, seed=0, md5=md5)
    assert s.train_images.shape == (5 * N_TRAIN - 10, 3, 32, 32)
    assert s.val_images.shape == (10, 3, 32, 32) and s.test_labels.shape == (N_TEST,)
    full, _, _ = c.load_cifar10(root)
    rows = {bytes(img.flatten().tolist()) for img in full}
    assert {bytes(img.flatten().tolist()) for img in s.val_images} <= rows
    assert s.classes == c.CIFAR10_CLASSES
