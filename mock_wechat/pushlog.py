"""The push log and the held-push queue: plain records, no locking of their own.

Every delivery attempt is logged with the decrypted message it carried, so a test can
read what was sent and have it sent again. Authorization pushes of a component set to
``auth_push: "hold"`` wait in the held queue until the control plane releases them. The
owning ``MockWeChat`` serializes all access with its one lock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PendingPush:
    """A sealed-to-be message for a component's 授权事件接收URL."""

    appid: str  # the component
    info_type: str
    message: str  # the decrypted XML
    created_at: float  # mock time

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PushRecord:
    appid: str
    info_type: str
    url: str
    http_status: int | None
    delivered: bool
    error: str | None
    time: float
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PushLog:
    def __init__(self) -> None:
        self._records: list[PushRecord] = []
        self._held: list[PendingPush] = []

    def clear(self) -> None:
        self._records = []
        self._held = []

    def append(self, record: PushRecord) -> None:
        self._records.append(record)

    def records(self) -> list[PushRecord]:
        return list(self._records)

    def entry(self, index: int) -> PushRecord:
        """The ``index``-th record (0-based); IndexError when there is none."""
        if not 0 <= index < len(self._records):
            raise IndexError(index)
        return self._records[index]

    def hold(self, push: PendingPush) -> None:
        self._held.append(push)

    def held(self) -> list[PendingPush]:
        return list(self._held)

    def take_held(self) -> list[PendingPush]:
        """Every held push, oldest first; the queue is empty afterwards."""
        taken, self._held = self._held, []
        return taken
