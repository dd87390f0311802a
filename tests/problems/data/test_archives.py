"""Archives: safe tar extraction and the verified, retrying download (from a local HTTP
server; no network)."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from minimax_problems.data import archives, cifar10, errors
from minimax_problems.data import cifar10_files as files
from minimax_problems.data.synthetic import write_synthetic_cifar10

N_TRAIN, N_TEST = 12, 7  # per training batch / test batch

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
        (_link("cifar-10-batches-py/etc", "/etc", tarfile.SYMTYPE), "a link"),
        (_link("cifar-10-batches-py/up", "../../evil", tarfile.SYMTYPE), "a link"),
        (_link("cifar-10-batches-py/hard", "../evil", tarfile.LNKTYPE), "a link"),
        (_device("cifar-10-batches-py/null"), "not a regular file"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-etc", "symlink-up", "hardlink", "dev"],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, add: Callable[[tarfile.TarFile], None], message: str
) -> None:
    archive = _tar_with(tmp_path / "bad.tar.gz", add)
    dest = tmp_path / "a" / "b"
    with pytest.raises(errors.UnsafeArchiveError, match=message):
        archives.safe_extract(archive, dest)
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/minimax-test-absolute-evil").exists()
    assert not (dest / "cifar-10-batches-py").exists()  # nothing extracted at all


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE], ids=["symlink", "hardlink"])
def test_in_tree_links_are_refused_too(tmp_path: Path, kind: bytes) -> None:
    add = _link("cifar-10-batches-py/alias.txt", "cifar-10-batches-py/ok.txt", kind)
    archive = _tar_with(tmp_path / "good.tar.gz", add)
    with pytest.raises(errors.UnsafeArchiveError, match="a link"):
        archives.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "cifar-10-batches-py").exists()


def test_loader_refuses_unsafe_archive(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    archive = _tar_with(root / "cifar-10-python.tar.gz", _file("../evil"))
    with pytest.raises(errors.UnsafeArchiveError):
        cifar10.load_cifar10(root, md5=archives.md5sum(archive))
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
    source = write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=3, n_test=3)
    server.files["cifar-10-python.tar.gz"] = [source.read_bytes()]
    md5 = archives.md5sum(source)
    root = tmp_path / "new" / "data"
    images, labels, classes = cifar10.load_cifar10(
        root, download=True, md5=md5, base_url=server.url
    )
    assert images.shape == (15, 3, 32, 32) and labels.shape == (15,)
    assert classes == files.CIFAR10_CLASSES
    assert server.requests == ["/~kriz/cifar-10-python.tar.gz"]
    assert archives.md5sum(root / "cifar-10-python.tar.gz") == md5
    assert _no_partial_files(root)
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and "100%" in err  # the progress bar
    # a second call finds the data and does not download again
    cifar10.load_cifar10(root, train=False, download=True, md5=md5, base_url=server.url)
    assert len(server.requests) == 1


def test_download_binary_format(tmp_path: Path, server: _Server) -> None:
    source = write_synthetic_cifar10(tmp_path / "src", format="binary", n_train_per_batch=2)
    server.files["cifar-10-binary.tar.gz"] = [source.read_bytes()]
    path = archives.download_archive(
        tmp_path / "root",
        "binary",
        base_url=server.url,
        md5=archives.md5sum(source),
        progress=False,
    )
    assert path == tmp_path / "root" / "cifar-10-binary.tar.gz"
    assert path.read_bytes() == source.read_bytes()


def test_download_with_bad_checksum_is_refused(tmp_path: Path, server: _Server) -> None:
    source = write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=2, n_test=2)
    server.files["cifar-10-python.tar.gz"] = [source.read_bytes()]
    root = tmp_path / "root"
    with pytest.raises(errors.ChecksumError, match=r"download .* is corrupt") as info:
        # the published md5
        cifar10.load_cifar10(root, download=True, base_url=server.url, progress=False)
    assert files.MD5["python"] in str(info.value)
    assert len(server.requests) == 3  # retried
    assert not (root / "cifar-10-python.tar.gz").exists()
    assert _no_partial_files(root)
    assert not (root / "cifar-10-batches-py").exists()


def test_download_retries_after_a_corrupt_transfer(tmp_path: Path, server: _Server) -> None:
    source = write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=2, n_test=2)
    good = source.read_bytes()
    server.files["cifar-10-python.tar.gz"] = [good[: len(good) // 2], good]
    path = archives.download_archive(
        tmp_path / "root", base_url=server.url, md5=archives.md5sum(source), progress=False
    )
    assert len(server.requests) == 2
    assert path.read_bytes() == good
    assert _no_partial_files(tmp_path / "root")


def test_download_retries_after_an_interrupted_transfer(tmp_path: Path, server: _Server) -> None:
    source = write_synthetic_cifar10(tmp_path / "source", n_train_per_batch=2, n_test=2)
    server.files["cifar-10-python.tar.gz"] = [source.read_bytes()]
    server.short_responses = 1
    path = archives.download_archive(
        tmp_path / "root", base_url=server.url, md5=archives.md5sum(source), progress=False
    )
    assert len(server.requests) == 2
    assert archives.md5sum(path) == archives.md5sum(source)
    assert _no_partial_files(tmp_path / "root")


def test_download_http_error(tmp_path: Path, server: _Server) -> None:
    with pytest.raises(errors.CIFAR10Error, match=r"could not download .*404"):
        archives.download_archive(tmp_path, base_url=server.url, progress=False)
    assert _no_partial_files(tmp_path)
