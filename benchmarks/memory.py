"""Resident memory of this process on Linux, read from /proc/self, for the benchmarks' peak
memory probes (each run in a fresh process).

Public API::

    status_kib(field) -> int    a /proc/self/status field in KiB (VmRSS: now, VmHWM: the peak)
    reset_peak()                reset the peak VmHWM to the current VmRSS (/proc/self/clear_refs)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["reset_peak", "status_kib"]


def status_kib(field: str) -> int:
    """The /proc/self/status ``field`` in KiB; a RuntimeError where the kernel has none."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    """Reset the high-water mark VmHWM to the current resident set (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")
