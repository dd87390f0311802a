"""The atomic writer (minimax_problems.files): all or nothing, no temporary file left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from minimax_problems.files import atomic_file, atomic_save, atomic_write_text, open_append


def test_text_and_torch_files_are_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    atomic_write_text(path, "first\n")
    atomic_write_text(path, "second ε\n")
    assert path.read_text(encoding="utf-8") == "second ε\n"
    atomic_save({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt")["w"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "c.pt"]


def test_an_error_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="mid-write"), atomic_file(path, "wb") as f:
        f.write(b"half")
        raise RuntimeError("mid-write")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    with pytest.raises(ValueError, match="mode"), atomic_file(path, "a"):
        pass


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_writer_gives_a_plain_files_permissions(tmp_path: Path, umask: int) -> None:
    """report.html / summary.json were 0600 (mkstemp's) while figures were 0644: every writer
    now follows the umask like open() does."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minimax_problems.files import save_figure

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}\n")
        atomic_save({"w": torch.zeros(1)}, tmp_path / "checkpoint.pt")
        fig = plt.figure()
        save_figure(fig, tmp_path / "figure.png", dpi=20)
        plt.close(fig)
        (tmp_path / "plain.txt").write_text("x")  # the reference: a file open() created
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes
    assert (tmp_path / "figure.png").read_bytes().startswith(b"\x89PNG")


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    atomic_write_text(link, "new")
    assert victim.read_text() == "keep"
    assert not link.is_symlink() and link.read_text() == "new"


def test_a_log_is_appended_but_never_through_a_link(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    with open_append(log) as f:
        f.write('{"a": 1}\n')
    with open_append(log) as f:
        f.write('{"a": 2}\n')
    assert log.read_text() == '{"a": 1}\n{"a": 2}\n'
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    link = tmp_path / "linked.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        open_append(link)
    assert target.read_text() == "keep\n"
