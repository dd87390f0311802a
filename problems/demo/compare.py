"""Compare two demo summaries, wall-clock fields aside: ``python -m minimax_problems.demo.compare A
B`` exits 0 when they agree and prints each difference otherwise (the check that a change to the
code left ``minimax demo --quick --seed 0`` unchanged).

``--by-part`` prints, per part of the summary, how many numbers differ and the largest
absolute difference (how the numbers move between thread settings or CPUs).

Public API::

    summary_differences(first, second) -> list[str]   ("$.path: a != b" lines; [] when equal)
    differences_by_part(first, second) -> {part: {"numbers", "differ", "max_abs"}}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .common import strip_times

__all__ = ["differences_by_part", "main", "summary_differences"]


def summary_differences(first: Any, second: Any) -> list[str]:
    """Where two summaries differ once `strip_times` removed the wall-clock fields."""
    return list(_diff(strip_times(first), strip_times(second), "$"))


def _numbers(a: Any, b: Any) -> Iterator[tuple[float, float]]:
    """Pairs of numbers at the same place in two JSON trees (booleans aside)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in set(a) & set(b):
            yield from _numbers(a[key], b[key])
    elif isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b):
            yield from _numbers(x, y)
    elif isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        yield float(a), float(b)


def differences_by_part(first: Any, second: Any) -> dict[str, dict[str, Any]]:
    """Per top-level part (wall-clock aside): numbers compared, how many differ, the largest
    absolute difference."""
    a, b = strip_times(first), strip_times(second)
    out = {}
    for part in sorted(set(a) & set(b)):
        pairs = list(_numbers(a[part], b[part]))
        gaps = [abs(x - y) for x, y in pairs if x != y]
        out[part] = {"numbers": len(pairs), "differ": len(gaps), "max_abs": max(gaps, default=0.0)}
    return out


def _diff(a: Any, b: Any, path: str) -> Iterator[str]:
    if type(a) is not type(b):
        yield f"{path}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                yield f"{path}.{key}: only in the {'first' if key in a else 'second'}"
            else:
                yield from _diff(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        if len(a) != len(b):
            yield f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: {a!r} != {b!r}"


def main(argv: Sequence[str] | None = None) -> int:
    """``A B``: 0 when the summaries agree (wall-clock aside), else 1 with the differences."""
    paths = list(sys.argv[1:] if argv is None else argv)
    by_part = "--by-part" in paths
    paths = [p for p in paths if p != "--by-part"]
    if len(paths) != 2:
        print(
            "usage: python -m minimax_problems.demo.compare [--by-part] FIRST/summary.json "
            "SECOND/summary.json",
            file=sys.stderr,
        )
        return 2
    first, second = (json.loads(Path(p).read_text(encoding="utf-8")) for p in paths)
    if by_part:
        for part, d in differences_by_part(first, second).items():
            print(
                f"{part}: {d['differ']} of {d['numbers']} numbers differ, largest absolute "
                f"difference {d['max_abs']:.3g}"
            )
    differences = summary_differences(first, second)
    print("\n".join(differences) if differences else "equal (wall-clock fields aside)")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
