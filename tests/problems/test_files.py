"""The atomic writer (problems.files): all or nothing, no temporary file left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from problems.files import atomic_file, atomic_save, atomic_write_text


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
