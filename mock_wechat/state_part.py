"""The base of the mock's state parts that share ``MockWeChat``'s lock and clock."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from mock_wechat.clock import Clock


class StatePart(ABC):
    """Holds its records under the shared lock; ``clear()`` (re)creates them."""

    def __init__(self, lock: threading.RLock, clock: Clock) -> None:
        self._lock = lock
        self._clock = clock
        self.clear()

    @abstractmethod
    def clear(self) -> None:
        """Empty the records (each part says which)."""
