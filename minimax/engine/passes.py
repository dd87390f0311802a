"""`PassCounter`: forward and backward passes, in units of one pass over a batch of B examples.

Only the engine adds to a counter (`minimax.engine.Engine`); everyone else reads it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["PassCounter"]


@dataclass
class PassCounter:
    """Forward and backward passes, in units of one pass over a batch of B examples."""

    forward: int = 0
    backward: int = 0

    def add(self, *, forward: int = 0, backward: int = 0) -> None:
        """Count ``forward`` and ``backward`` more passes (called by the engine only)."""
        self.forward += int(forward)
        self.backward += int(backward)

    def snapshot(self) -> tuple[int, int]:
        return self.forward, self.backward

    def restore(self, snapshot: tuple[int, int]) -> None:
        """Set the counts back to a `snapshot` (e.g. from a checkpoint)."""
        self.forward, self.backward = (int(n) for n in snapshot)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Passes run inside are not counted (`Engine.uncounted`)."""
        saved = self.snapshot()
        try:
            yield
        finally:
            self.restore(saved)
