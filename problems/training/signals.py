"""SIGINT / SIGTERM during training: the first sets a flag (the loop finishes the step and
writes a checkpoint), a second raises KeyboardInterrupt at once.

Public API::

    Signals()          a context manager; ``.received`` is the first signal's number or None
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["Signals"]


class Signals:
    """Turns SIGINT/SIGTERM into a flag; a second signal raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
