"""Packaging: ``import minimax`` pulls in no optional dependency, and the wheel installs into an
environment that already holds torch without touching it."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ["hypothesis", "sklearn", "matplotlib", "cvxpy", "cvxpylayers", "torchattacks"]


def test_import_minimax_loads_no_optional_dependency():
    code = (
        "import json, sys, minimax\n"
        f"print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def _requirements(name: str) -> list[str]:
    """Names of the distributions ``name`` requires at run time (no extras), for this Python."""
    out = []
    for req in md.requires(name) or []:
        spec, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        if marker.strip():
            env = {"sys_platform": sys.platform, "platform_system": os.uname().sysname}
            env["python_version"] = f"{sys.version_info.major}.{sys.version_info.minor}"
            try:
                from packaging.markers import Marker

                if not Marker(marker).evaluate(env):
                    continue
            except ImportError:
                pass
        out.append(re.split(r"[\s<>=!~\[(]", spec.strip(), maxsplit=1)[0])
    return out


def _closure(names: list[str]) -> set[str]:
    """These distributions and everything they require, transitively (installed ones only)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(key)
        todo.extend(_requirements(name))
    return seen


def _base_site(tmp: Path) -> Path:
    """A directory holding (as links) torch and minimax's core dependencies with everything they
    require, and nothing else: the user's existing environment."""
    base = tmp / "base-site"
    base.mkdir()
    for name in _closure(["torch", "numpy", "scipy", "tqdm"]):
        dist = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        root = Path(str(dist.locate_file("")))
        for top in tops:
            src = root / top
            if top in ("..", "bin") or not src.exists() or (base / top).exists():
                continue
            (base / top).symlink_to(src)
    return base


@pytest.mark.slow
def test_wheel_installs_beside_an_existing_torch_and_leaves_it_alone(tmp_path):
    import torch

    src = tmp_path / "src"
    src.mkdir()
    for item in ("pyproject.toml", "README.md", "minimax", "problems"):
        copy = shutil.copytree if (ROOT / item).is_dir() else shutil.copy
        copy(ROOT / item, src / item)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index, no find-links, no machine-wide constraints
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    r = subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "dist").glob("minimax-*.whl")

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    py = target / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    (Path(purelib) / "existing-torch.pth").write_text(str(_base_site(tmp_path)) + "\n")

    # --no-index: if pip wanted to replace torch (or add anything), it would fail here.
    r = subprocess.run(
        [*pip, "--python", str(py), "install", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    code = (
        "import json, sys, torch, minimax\n"
        "print(json.dumps([torch.__version__, torch.__file__, minimax.__file__,"
        f" [m for m in {OPTIONAL!r} if m in sys.modules]]))"
    )
    r = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert r.returncode == 0, r.stderr
    version, torch_file, minimax_file, optional = json.loads(r.stdout.strip().splitlines()[-1])
    assert version == torch.__version__
    assert Path(torch_file).resolve() == Path(torch.__file__).resolve()
    assert Path(minimax_file).resolve().is_relative_to(Path(purelib).resolve())
    assert optional == []

    # the instances install as minimax_problems, never as a top-level "problems" that would clash
    # with a user's own module of that name; the command line runs from the wheel
    import zipfile

    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert "minimax_problems" in tops and "problems" not in tops, sorted(tops)
    user = tmp_path / "user"
    (user / "problems").mkdir(parents=True)
    (user / "problems" / "__init__.py").write_text("MINE = True\n")
    code = "import problems, minimax_problems.cli; print(problems.MINE)"
    r = subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, env=env, cwd=user, timeout=120
    )
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr
    r = subprocess.run(
        [str(target / "bin" / "minimax"), "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=user,
        timeout=120,
    )
    assert r.returncode == 0 and "minimax" in r.stdout + r.stderr, r.stdout + r.stderr


def test_every_package_folder_is_listed_in_pyproject():
    """pyproject.toml lists the packages by hand (the folder problems/ installs under another
    name): a new package folder missing from the list would be left out of the wheel."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = set()
    for top, name in (("minimax", "minimax"), ("problems", "minimax_problems")):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            folders.add(".".join([name, *parts]))
    assert listed == folders, f"add to / remove from [tool.setuptools] packages: {listed ^ folders}"
