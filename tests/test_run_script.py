"""``./run``: the first run says in one line what it installs, later runs are quiet, and the
README's torchrun line works as written (``./run`` puts the environment's bin/ on PATH)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minimax.testing.distributed import free_port

ROOT = Path(__file__).resolve().parents[1]
BARE_PATH = "/usr/bin:/bin"  # no environment's bin/ on it


def _stamp() -> str:
    data = b"".join(
        (ROOT / n).read_bytes() for n in ("pyproject.toml", "constraints.txt", "peers.txt")
    )
    return hashlib.sha256(data).hexdigest()


def _run(args: list[str], venv: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "MINIMAX_VENV": str(venv), "PATH": BARE_PATH, **env}
    return subprocess.run(
        [str(ROOT / "run"), *args], env=full, capture_output=True, text=True, timeout=300
    )


def test_the_first_run_says_what_it_installs_then_is_quiet(tmp_path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "pip.log"
    fake = venv / "bin" / "python"  # records the install commands instead of running pip
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    first = _run(["python", "--version"], venv)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1, first.stderr
    torch_pin = re.search(r"^torch==\S+", (ROOT / "constraints.txt").read_text(), re.M)
    assert torch_pin is not None
    for needle in (str(venv), torch_pin.group(0), "[dev]", "torchjd=="):
        assert needle in lines[0], lines[0]
    assert "install" in log.read_text() and (venv / ".minimax-installed").read_text().strip()
    again = _run(["python", "--version"], venv)
    assert again.returncode == 0 and again.stderr == "", again.stderr


def _linked_venv(tmp_path: Path) -> Path:
    """An environment whose bin/ holds this interpreter's python, torchrun and minimax, already
    stamped as installed (nothing is installed by the test)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    real = Path(sys.executable).parent
    for name in ("torchrun", "minimax"):
        if not (real / name).exists():
            pytest.skip(f"no {name} script beside {sys.executable}")
        (venv / "bin" / name).symlink_to(real / name)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".minimax-installed").write_text(_stamp() + "\n")
    return venv


def _readme_torchrun_line() -> list[str]:
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"^\./run torchrun .*$", text, re.M)
    assert len(found) == 1, found
    return found[0].split()


@pytest.mark.slow
def test_the_readmes_torchrun_line_works_under_run(tmp_path) -> None:
    """``./run torchrun ... --no-python minimax ...`` failed with FileNotFoundError 'minimax':
    the environment's bin/ was not on PATH. The README's line, up to its options, runs a tiny
    two-rank training here (the options after ``train`` are a digits smoke run, offline)."""
    words = _readme_torchrun_line()
    prefix = words[1 : words.index("train") + 1]  # torchrun --nproc-per-node 2 ... train
    assert prefix[:4] == ["torchrun", "--nproc-per-node", "2", "--no-python"], prefix
    distributed = (ROOT / "docs" / "distributed.md").read_text()
    assert "./run torchrun --nproc-per-node 4 --no-python minimax train" in " ".join(
        distributed.split()
    )
    tiny = ["--dataset", "digits", "--data-dir", str(tmp_path / "data"), "--model", "small_cnn"]
    tiny += ["--epochs", "1", "--steps", "1", "--eval-steps", "1", "--limit-train", "16"]
    tiny += ["--limit-test", "8", "--batch-size", "8", "--val-split", "8", "--no-progress"]
    tiny += ["--out", str(tmp_path / "run"), "--device", "cpu", "--dist-timeout", "60"]
    done = _run(
        [*prefix, *tiny],
        _linked_venv(tmp_path),
        PYTHONPATH=str(ROOT),
        PET_MASTER_PORT=str(free_port()),
        OMP_NUM_THREADS="1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert '"status": "completed"' in done.stdout
    assert shutil.which("minimax", path=BARE_PATH) is None  # it was found through ./run's PATH
