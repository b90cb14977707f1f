"""The mock's clock: real wall time plus a forward offset that tests control.

Moving only forward keeps every lifetime rule (tokens, tickets, codes) monotonic, and
keeping real time underneath lets pushes and receivers agree on "now" by default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def now(self) -> float:
        """Mock time in Unix seconds."""
        with self._lock:
            return self._wall() + self._offset

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new mock time."""
        if not seconds >= 0:  # also refuses NaN
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
            return self._wall() + self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
