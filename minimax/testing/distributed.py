"""Run a command on N local ranks, as ``torchrun`` would set them up, for tests on CPU (gloo).

Public API::

    free_port() -> int
    run_ranks(argv, world_size, *, timeout=120.0, env=None) -> list[RankResult]
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["RankResult", "free_port", "run_ranks"]


@dataclass(frozen=True)
class RankResult:
    """One rank's exit: return code (negative: killed by that signal), output, seconds."""

    rank: int
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ranks(
    argv: Sequence[str],
    world_size: int,
    *,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> list[RankResult]:
    """Start ``argv`` once per rank with torchrun's variables (RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR=127.0.0.1, MASTER_PORT) and wait for all; a rank still running after
    ``timeout`` seconds is killed (its return code is then negative)."""
    if world_size < 1:
        raise ValueError(f"world_size must be ≥ 1, got {world_size}")
    base = {**os.environ, **(env or {})}
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(world_size))
    base.update(OMP_NUM_THREADS="1")
    procs, started = [], time.monotonic()
    for rank in range(world_size):
        rank_env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        procs.append(
            subprocess.Popen(
                list(argv), env=rank_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    results = []
    for rank, proc in enumerate(procs):
        left = max(1.0, timeout - (time.monotonic() - started))
        try:
            out, err = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results.append(RankResult(rank, proc.returncode, out, err, time.monotonic() - started))
    return results
