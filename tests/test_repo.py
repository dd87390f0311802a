"""Repository-level checks that are part of the suite: lint, types, the docs site."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run ./run test, which installs the dev extras")
    return found


def test_ruff_clean():
    r = _run(_tool("ruff"), "check", "minimax", "problems", "tests", "benchmarks", "examples")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_clean():
    """Every Python file is as `ruff format` writes it, with no formatter escape hatch."""
    r = _run(_tool("ruff"), "format", "--check", ".")
    assert r.returncode == 0, r.stdout + r.stderr
    tracked = _run("git", "ls-files", "*.py").stdout.split()
    skipped = [f for f in tracked if "fmt: " + "skip" in (ROOT / f).read_text()]
    assert skipped == [], f"files that opt out of the formatter: {skipped}"


def test_mypy_clean():
    r = _run(_tool("mypy"), "minimax", "problems")
    assert r.returncode == 0, r.stdout + r.stderr


def test_docs_build_strict(tmp_path):
    r = _run(_tool("mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_public_api_names():
    import minimax

    for name in [
        "min_norm_weights",
        "min_norm_point",
        "LinfBall",
        "L2Ball",
        "L1Ball",
        "Box",
        "FunctionProblem",
        "ModuleProblem",
        "PGD",
        "FGSM",
        "Danskin",
        "MaxLoss",
        "DDi",
        "descent_direction",
        "MinMaxOptimizer",
    ]:
        assert name in minimax.__all__ and hasattr(minimax, name), name
    assert sorted(minimax.__all__) == sorted(set(minimax.__all__))
